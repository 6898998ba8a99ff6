"""Step types: the fields each accepts, how they are checked, and how a step runs."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from .definition import EngineConfig, StepSpec
from .errors import ExecutionCancelled, FlowError, StepError, StepTimeout
from .functions import is_pure
from .hooks import RunHooks
from .references import stringify

COMMON_FIELDS = frozenset(
    {"name", "type", "after", "timeout", "retries", "retry_delay", "retry_backoff", "description"}
)
FLOW_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
MAX_SLEEP_SECONDS = 300


class Stop(threading.Event):
    """The event an attempt's work watches; setting it also runs the callbacks that unblock that work."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def set(self) -> None:
        """Set the event, then run (once) every registered callback."""
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
            super().set()
        for callback in callbacks:
            callback()

    @contextmanager
    def calling(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run `callback` if the event is set while the block runs (at once when it already is)."""
        with self._lock:
            registered = not self.is_set()
            if registered:
                self._callbacks.append(callback)
        if not registered:
            callback()
        try:
            yield
        finally:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)


@dataclass(frozen=True)
class StepContext:
    """What a running attempt may use besides its resolved fields."""

    step: StepSpec
    config: EngineConfig
    hooks: RunHooks
    depth: int
    timeout: float | None
    stop: Stop  # set when the attempt timed out or the run was cancelled
    cancelled: threading.Event  # set when the run was cancelled

    def fail(self, message: str) -> StepError:
        """Build a StepError naming this step."""
        return StepError(self.step.name, message)

    def stopped(self) -> FlowError:
        """The error for work that `stop` interrupted: cancelled, or timed out."""
        if self.cancelled.is_set():
            return ExecutionCancelled()
        return StepTimeout(self.step.name, f"timed out after {self.timeout:g}s")


class StepType(Protocol):
    """A kind of step: its fields (name -> required), their checks, and its execution."""

    fields: Mapping[str, bool]

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """Return problems with the type-specific fields; unresolved references pass unless `resolved`."""

    def inline(self, step: StepSpec, config: EngineConfig) -> bool:
        """True when the step is pure and instant, so it may run on the scheduling thread without a timeout."""

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Run the step with resolved fields and return its output."""


class _Threaded:
    """Default for step types that block or touch the outside world: never inline."""

    def inline(self, step: StepSpec, config: EngineConfig) -> bool:
        """Not pure: run on a pool thread under the step's timeout."""
        return False


def dynamic(value: Any, resolved: bool) -> bool:
    """True when a value still holds a `${...}` reference, so only run time can check it."""
    return not resolved and isinstance(value, str) and "${" in value


def is_number(value: Any) -> bool:
    """True for ints and floats, not bools."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_string(fields: Mapping[str, Any], name: str) -> list[str]:
    """The field, when present, must be a string."""
    if name in fields and not isinstance(fields[name], str):
        return [f'"{name}" must be a string']
    return []


def check_object(fields: Mapping[str, Any], name: str, resolved: bool) -> list[str]:
    """The field, when present, must be an object (or a reference to one)."""
    value = fields.get(name)
    if name in fields and not isinstance(value, Mapping) and not dynamic(value, resolved):
        return [f'"{name}" must be an object']
    return []


class TemplateStep:
    """Substitute references into a string; output is always a string."""

    fields: Mapping[str, bool] = {"template": True}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`template` must be a string as written; a reference in it may resolve to anything."""
        return [] if resolved else check_string(fields, "template")

    def inline(self, step: StepSpec, config: EngineConfig) -> bool:
        """Substitution is pure and instant."""
        return True

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Return the substituted template."""
        return stringify(fields["template"])


class PythonStep:
    """Call a function from the allowlist registry with keyword arguments."""

    fields: Mapping[str, bool] = {"function": True, "args": False}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`function` must be a registered name, `args` an object."""
        problems = check_object(fields, "args", resolved)
        function = fields.get("function")
        if not isinstance(function, str):
            problems.append('"function" must be a string')
        elif function not in config.python_functions:
            problems.append(f'unknown function "{function}"')
        return problems

    def inline(self, step: StepSpec, config: EngineConfig) -> bool:
        """Functions marked pure (the built-ins) run inline."""
        function = config.python_functions.get(step.config.get("function", ""))
        return function is not None and is_pure(function)

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Call the function."""
        function = context.config.python_functions[fields["function"]]
        return function(**fields.get("args", {}))


class SleepStep(_Threaded):
    """Wait, waking early when the attempt times out or the run is cancelled."""

    fields: Mapping[str, bool] = {"seconds": True}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`seconds` must be a number between 0 and MAX_SLEEP_SECONDS."""
        seconds = fields.get("seconds")
        if dynamic(seconds, resolved) or "seconds" not in fields:
            return []
        if not is_number(seconds):
            return ['"seconds" must be a number']
        if not 0 <= seconds <= MAX_SLEEP_SECONDS:
            return [f'"seconds" must be between 0 and {MAX_SLEEP_SECONDS}']
        return []

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Wait on the stop event rather than sleeping, so the thread is released early."""
        if context.stop.wait(fields["seconds"]):
            raise context.stopped()
        return None


class FailStep:
    """Fail on purpose, to exercise error paths."""

    fields: Mapping[str, bool] = {"message": False}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`message` must be a string."""
        return check_string(fields, "message")

    def inline(self, step: StepSpec, config: EngineConfig) -> bool:
        """Raising is pure and instant."""
        return True

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Raise a StepError with the message."""
        raise context.fail(fields.get("message") or "failed")


class FlowStep(_Threaded):
    """Run another flow through the caller's hooks, one level deeper."""

    fields: Mapping[str, bool] = {"flow": True, "inputs": False}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`flow` must be a flow name, `inputs` an object."""
        problems = check_object(fields, "inputs", resolved)
        flow = fields.get("flow")
        if "flow" in fields and not dynamic(flow, resolved):
            if not isinstance(flow, str):
                problems.append('"flow" must be a string')
            elif not FLOW_NAME.fullmatch(flow):
                problems.append(f'"flow" is not a valid flow name: "{flow}"')
        return problems

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Return the sub-flow's outputs."""
        depth = context.depth + 1
        if depth > context.config.max_depth:
            raise context.fail(
                f'sub-flow "{fields["flow"]}" would nest {depth} levels deep (max {context.config.max_depth})'
            )
        try:
            return dict(context.hooks.run_subflow(fields["flow"], fields.get("inputs", {}), depth, context.stop))
        except StepError:
            raise
        except FlowError as exc:
            raise context.fail(str(exc)) from exc

"""Run a FlowDefinition: a DAG of steps on a bounded thread pool, with retries, timeouts and spans."""

# Threads: the caller's thread schedules steps and polls `hooks.is_cancelled()`; a pool of
# `max_workers` threads drives steps (attempts and retries); each attempt body runs on its own daemon
# thread, so an attempt that overruns its timeout is abandoned without holding a pool slot.
# Steps that never started are left out of `RunResult.steps`.

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tracing.attributes import (
    EVENT_CONTENT,
    FLOW_STEP_ATTEMPT,
    FLOW_STEP_NAME,
    FLOW_STEP_TYPE,
    STEP_INPUT_EVENT,
    STEP_OUTPUT_EVENT,
    STEP_SPAN,
    TRACER_NAME,
)

from .definition import EngineConfig, FlowDefinition, RunResult, StepOutcome, StepSpec
from .errors import ExecutionCancelled, FlowError, StepError, StepTimeout
from .hooks import NullHooks, RunHooks
from .recording import content
from .references import Scope, resolve
from .steps import STEP_TYPES, StepContext

tracer = trace.get_tracer(TRACER_NAME)

# How often the scheduler asks hooks.is_cancelled() while steps run; the hook may query a database.
CANCEL_POLL_SECONDS = 0.25


def run(
    definition: FlowDefinition,
    inputs: Mapping[str, Any],
    *,
    config: EngineConfig,
    hooks: RunHooks | None = None,
    depth: int = 0,
) -> RunResult:
    """Run a definition with bound inputs; step failures come back in the result, never raised."""
    return _Run(definition, inputs, config, hooks or NullHooks(), depth).execute()


@dataclass(frozen=True)
class _Attempt:
    """How one attempt of a step ended."""

    status: str
    output: Any
    error: str | None
    started_at: datetime
    finished_at: datetime
    span_id: str | None


class _Run:
    """The mutable state of one run, shared between the scheduling thread and the pool."""

    def __init__(
        self,
        definition: FlowDefinition,
        inputs: Mapping[str, Any],
        config: EngineConfig,
        hooks: RunHooks,
        depth: int,
    ):
        self.definition = definition
        self.inputs = dict(inputs)
        self.config = config
        self.hooks = hooks
        self.depth = depth
        self.lock = threading.Lock()
        self.outputs: dict[str, Any] = {}  # succeeded step -> output
        self.cancelled = threading.Event()
        self.stops: set[threading.Event] = set()  # stop events of running attempts

    def execute(self) -> RunResult:
        """Start steps as their dependencies succeed until all are done, one fails, or cancel arrives."""
        pending = list(self.definition.steps)
        running: dict[Future[StepOutcome], StepSpec] = {}
        outcomes: list[StepOutcome] = []
        failure: StepOutcome | None = None
        with ThreadPoolExecutor(self.config.max_workers, thread_name_prefix="flowexec-step") as pool:
            while True:
                if failure is None and not self.cancelled.is_set():
                    for step in self._ready(pending):
                        if len(running) >= self.config.max_workers or self._check_cancelled():
                            break
                        pending.remove(step)
                        # Copy the caller's context so step spans are children of the caller's span.
                        running[pool.submit(contextvars.copy_context().run, self._run_step, step)] = step
                if not running:
                    break
                done, _ = wait(running, timeout=CANCEL_POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    del running[future]
                    outcome = future.result()
                    outcomes.append(outcome)
                    if outcome.status == "succeeded":
                        with self.lock:
                            self.outputs[outcome.name] = outcome.output
                    elif outcome.status == "failed" and failure is None and not self.cancelled.is_set():
                        failure = outcome
                if failure is None:
                    self._check_cancelled()
        return self._result(tuple(outcomes), failure)

    def _ready(self, pending: list[StepSpec]) -> list[StepSpec]:
        """Pending steps whose dependencies have all succeeded, in definition order."""
        with self.lock:
            done = set(self.outputs)
        return [step for step in pending if step.depends_on <= done]

    def _check_cancelled(self) -> bool:
        """Ask the hooks once; on cancel, wake every running attempt that can stop early."""
        if self.cancelled.is_set():
            return True
        if not self.hooks.is_cancelled():
            return False
        with self.lock:
            self.cancelled.set()
            for stop in self.stops:
                stop.set()
        return True

    def _result(self, steps: tuple[StepOutcome, ...], failure: StepOutcome | None) -> RunResult:
        """Build the run result, resolving `outputs` when every step succeeded."""
        if self.cancelled.is_set():
            return RunResult("cancelled", {}, str(ExecutionCancelled()), steps)
        if failure is not None:
            return RunResult("failed", {}, failure.error, steps)
        try:
            outputs = resolve(self.definition.outputs, Scope(self.inputs, dict(self.outputs)))
        except ValueError as exc:
            return RunResult("failed", {}, f"outputs: {exc}", steps)
        return RunResult("succeeded", outputs, None, steps)

    def _run_step(self, step: StepSpec) -> StepOutcome:
        """Drive one step through its attempts on a pool thread; report and return its outcome."""
        attempts: list[_Attempt] = []
        for number in range(1, step.retries + 2):
            attempt = self._attempt(step, number)
            attempts.append(attempt)
            if attempt.status != "failed" or self.cancelled.is_set():
                break
        last = attempts[-1]
        outcome = StepOutcome(
            name=step.name,
            type=step.type,
            status=last.status,
            output=last.output,
            error=last.error,
            attempts=len(attempts),
            started_at=attempts[0].started_at,
            finished_at=last.finished_at,
            span_id=last.span_id,
        )
        self.hooks.step_finished(outcome)
        return outcome

    def _attempt(self, step: StepSpec, number: int) -> _Attempt:
        """Run one attempt inside its own `step {name}` span."""
        stop = threading.Event()
        with self.lock:
            self.stops.add(stop)
            if self.cancelled.is_set():
                stop.set()
        started_at = _now()
        self.hooks.step_started(step, number, started_at)
        attributes = {FLOW_STEP_NAME: step.name, FLOW_STEP_TYPE: step.type, FLOW_STEP_ATTEMPT: number}
        status, output, error = "succeeded", None, None
        with tracer.start_as_current_span(
            STEP_SPAN.format(step=step.name),
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                output = self._execute(step, stop, span)
            except FlowError as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                status = "cancelled" if isinstance(exc, ExecutionCancelled) else "failed"
                error = str(exc)
            finally:
                with self.lock:
                    self.stops.discard(stop)
        return _Attempt(status, output, error, started_at, _now(), _span_id(span))

    def _execute(self, step: StepSpec, stop: threading.Event, span: Span) -> Any:
        """Resolve the step's fields, check them, run the step with its timeout and record content."""
        with self.lock:
            scope = Scope(self.inputs, dict(self.outputs))
        try:
            fields = resolve(step.config, scope)
        except ValueError as exc:
            raise StepError(step.name, str(exc)) from exc
        step_type = STEP_TYPES[step.type]
        if problems := step_type.check(fields, self.config, resolved=True):
            raise StepError(step.name, "; ".join(problems))
        self._record(span, STEP_INPUT_EVENT, fields)
        timeout = step.timeout if step.timeout is not None else self.config.default_step_timeout
        context = StepContext(step, self.config, self.hooks, self.depth, timeout, stop, self.cancelled)
        output = _call_with_timeout(step_type.execute, fields, context)
        try:
            json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise StepError(step.name, f"output is not JSON-serialisable: {exc}") from exc
        self._record(span, STEP_OUTPUT_EVENT, output)
        return output

    def _record(self, span: Span, event: str, value: Any) -> None:
        """Add a redacted, capped content event when content recording is on."""
        if self.config.record_content and span.is_recording():
            text = content(value, keys=self.config.redact_keys, max_bytes=self.config.content_max_bytes)
            span.add_event(event, {EVENT_CONTENT: text})


def _call_with_timeout(
    execute: Callable[[Mapping[str, Any], StepContext], Any], fields: Mapping[str, Any], context: StepContext
) -> Any:
    """Run a step body on a daemon thread; past the timeout, wake it via `stop` and abandon it."""
    result: Future[Any] = Future()

    def body() -> None:
        """Run the step body and hand back its result or error."""
        try:
            result.set_result(execute(fields, context))
        except FlowError as exc:
            result.set_exception(exc)
        except Exception as exc:  # boundary: python-step functions may raise anything; it fails the step
            result.set_exception(StepError(context.step.name, f"{type(exc).__name__}: {exc}"))

    # The body sees the step span as current, so client spans and sub-flows nest under it.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(body,), name=f"flowexec-{context.step.name}", daemon=True
    )
    thread.start()
    try:
        return result.result(timeout=context.timeout)
    except TimeoutError:
        context.stop.set()
        raise StepTimeout(context.step.name, f"timed out after {context.timeout:g}s") from None


def _span_id(span: Span) -> str | None:
    """The span id as 16 hex digits, or None when the span is not sampled."""
    span_context = span.get_span_context()
    if span_context.is_valid and span_context.trace_flags.sampled:
        return format(span_context.span_id, "016x")
    return None


def _now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)

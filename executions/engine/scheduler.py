"""Run a FlowDefinition: a DAG of steps, pure ones inline, the rest on a bounded pool; retries, timeouts, spans."""

# Threads: the caller's thread schedules steps, runs pure and instant steps (template, fail, python
# functions marked pure) itself, and asks `hooks.is_cancelled()` when the run starts, after pool
# steps finish, and otherwise at most every CANCEL_POLL_SECONDS (inline steps take microseconds).
# Other steps go to a pool of `max_workers` threads, created only when a run has such a step; each
# of their attempts runs on its own daemon thread, so an attempt that overruns its timeout is woken
# through its `Stop` (sockets shut, sub-flows cancelled) and abandoned without holding a pool slot.
# Steps that never started are left out of `RunResult.steps`. Secret values are masked in all the
# run returns and records; the raw values stay inside, so later steps can still use them.

from __future__ import annotations

import contextvars
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
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
from tracing.redaction import mask, mask_value, masking, record_exception

from .definition import EngineConfig, FlowDefinition, RunResult, StepOutcome, StepSpec
from .errors import ExecutionCancelled, FlowError, StepError, StepTimeout
from .hooks import NullHooks, RunHooks
from .recording import content
from .references import Scope, resolve
from .registry import STEP_TYPES
from .spans import CurrentSpan
from .steps import StepContext, Stop
from .validation import MAX_RETRY_DELAY, secret_inputs

tracer = trace.get_tracer(TRACER_NAME)

# How often the scheduler asks hooks.is_cancelled() while a run goes on; the hook may query a database.
CANCEL_POLL_SECONDS = 0.2


def run(
    definition: FlowDefinition,
    inputs: Mapping[str, Any],
    *,
    config: EngineConfig,
    hooks: RunHooks | None = None,
    depth: int = 0,
    secrets: Iterable[Any] = (),
) -> RunResult:
    """Run a definition with bound inputs; step failures come back in the result, never raised.

    The values of secret inputs, and `secrets`, are masked in everything the run returns and records.
    """
    own = [inputs[name] for name in secret_inputs(definition) if name in inputs]
    with masking([*own, *secrets]) as active:
        return _Run(definition, inputs, config, hooks or NullHooks(), depth, active).execute()


def instant(definition: FlowDefinition, config: EngineConfig) -> bool:
    """True when every step runs inline (pure and instant): the whole run takes no time worth a thread."""
    return all(_runs_inline(step, config) for step in definition.steps)


def _runs_inline(step: StepSpec, config: EngineConfig) -> bool:
    return step.retry_delay == 0 and STEP_TYPES[step.type].inline(step, config)


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
        secrets: frozenset[str],
    ):
        self.definition = definition
        self.inputs = dict(inputs)
        self.config = config
        self.hooks = hooks
        self.depth = depth
        self.secrets = secrets
        self.lock = threading.Lock()
        self.outputs: dict[str, Any] = {}  # succeeded step -> raw output
        self.cancelled = threading.Event()
        # Inline attempts share one stop (they never wait on it); threaded attempts get their own.
        self.inline_stop = Stop()
        self.stops: set[Stop] = {self.inline_stop}  # stop events of running attempts
        self.next_poll = 0.0  # due at once: a run cancelled before it starts runs nothing
        self.outcomes: list[StepOutcome] = []
        self.failure: StepOutcome | None = None

    def execute(self) -> RunResult:
        """Start steps as their dependencies succeed until all are done, one fails, or cancel arrives."""
        pending = list(self.definition.steps)
        running: dict[Future[StepOutcome], StepSpec] = {}
        pool: ThreadPoolExecutor | None = None
        try:
            while True:
                progressed = False
                for step in self._ready(pending):
                    if self.failure is not None or self._check_cancelled():
                        break
                    if self._inline(step):
                        pending.remove(step)
                        self._finished(self._run_step(step, inline=True))
                        progressed = True
                    elif len(running) < self.config.max_workers:
                        if pool is None:
                            pool = ThreadPoolExecutor(self.config.max_workers, thread_name_prefix="flowexec-step")
                        pending.remove(step)
                        # Copy the caller's context: step spans are children of the caller's span,
                        # and the secrets being masked stay active in pool threads.
                        future = pool.submit(contextvars.copy_context().run, self._run_step, step, False)
                        running[future] = step
                if running:
                    timeout = max(self.next_poll - time.monotonic(), 0.0)
                    done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                    for future in done:
                        del running[future]
                        self._finished(future.result())
                    if done:
                        self.next_poll = 0.0  # a pool step took real time: ask before starting the next
                    self._check_cancelled()
                elif not progressed:
                    break
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return self._result()

    def _inline(self, step: StepSpec) -> bool:
        """Pure and instant steps without retry waits run on the scheduling thread."""
        return _runs_inline(step, self.config)

    def _ready(self, pending: list[StepSpec]) -> list[StepSpec]:
        """Pending steps whose dependencies have all succeeded, in definition order."""
        with self.lock:
            done = set(self.outputs)
        return [step for step in pending if step.depends_on <= done]

    def _finished(self, outcome: StepOutcome) -> None:
        """Take in a finished step: its output for later steps, or the run's first failure."""
        self.outcomes.append(outcome)
        if outcome.status == "failed" and self.failure is None and not self.cancelled.is_set():
            self.failure = outcome

    def _check_cancelled(self) -> bool:
        """Ask the hooks when a poll is due; on cancel, stop every running attempt."""
        if self.cancelled.is_set():
            return True
        now = time.monotonic()
        if now < self.next_poll:
            return False
        self.next_poll = now + CANCEL_POLL_SECONDS
        if not self.hooks.is_cancelled():
            return False
        with self.lock:
            self.cancelled.set()
            stops = list(self.stops)
        for stop in stops:
            stop.set()
        return True

    def _result(self) -> RunResult:
        """Build the run result, resolving `outputs` when every step succeeded."""
        steps = tuple(self.outcomes)
        if self.cancelled.is_set():
            return RunResult("cancelled", {}, str(ExecutionCancelled()), steps)
        if self.failure is not None:
            return RunResult("failed", {}, self.failure.error, steps)
        try:
            outputs = resolve(self.definition.outputs, Scope(self.inputs, dict(self.outputs)))
            _check_output(outputs, self.config)
        except ValueError as exc:
            return RunResult("failed", {}, mask(f"outputs: {exc}", self.secrets), steps)
        return RunResult("succeeded", mask_value(outputs, self.secrets), None, steps)

    def _run_step(self, step: StepSpec, inline: bool) -> StepOutcome:
        """Drive one step through its attempts; report and return its outcome, secrets masked."""
        attempts: list[_Attempt] = []
        for number in range(1, step.retries + 2):
            if number > 1 and not self._wait_before_retry(step, number - 1):
                break
            attempt = self._attempt(step, number, inline)
            attempts.append(attempt)
            if attempt.status != "failed" or self.cancelled.is_set():
                break
        last = attempts[-1]
        if last.status == "succeeded":
            with self.lock:
                self.outputs[step.name] = last.output
        outcome = StepOutcome(
            name=step.name,
            type=step.type,
            status=last.status,
            output=mask_value(last.output, self.secrets),
            error=None if last.error is None else mask(last.error, self.secrets),
            attempts=len(attempts),
            started_at=attempts[0].started_at,
            finished_at=last.finished_at,
            span_id=last.span_id,
        )
        self.hooks.step_finished(outcome)
        return outcome

    def _wait_before_retry(self, step: StepSpec, retry: int) -> bool:
        """Wait a jittered, capped, exponentially growing delay; False when the run was cancelled meanwhile."""
        ceiling = min(MAX_RETRY_DELAY, step.retry_delay * step.retry_backoff ** (retry - 1))
        delay = random.uniform(0, ceiling)  # full jitter: retries of many runs do not arrive together
        return not self.cancelled.wait(delay) if delay > 0 else not self.cancelled.is_set()

    def _attempt(self, step: StepSpec, number: int, inline: bool) -> _Attempt:
        """Run one attempt inside its own `step {name}` span."""
        stop = self.inline_stop if inline else Stop()
        if not inline:
            with self.lock:
                self.stops.add(stop)
                if self.cancelled.is_set():
                    stop.set()
        started_at = _now()
        if not inline:
            self.hooks.step_started(step, number, started_at)
        attributes = {FLOW_STEP_NAME: step.name, FLOW_STEP_TYPE: step.type, FLOW_STEP_ATTEMPT: number}
        status, output, error = "succeeded", None, None
        span = tracer.start_span(
            STEP_SPAN.format(step=step.name),
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        with CurrentSpan(span):
            try:
                output = self._execute(step, stop, span, inline)
                if self.cancelled.is_set():
                    raise ExecutionCancelled()  # finished after the cancel: it must not count as done
            except FlowError as exc:
                # Recorded by hand: the SDK's own recording would carry secret values in clear.
                record_exception(span, exc)
                span.set_status(Status(StatusCode.ERROR, mask(str(exc), self.secrets)))
                status = "cancelled" if isinstance(exc, ExecutionCancelled) else "failed"
                output, error = None, str(exc)
            finally:
                if not inline:
                    with self.lock:
                        self.stops.discard(stop)
        return _Attempt(status, output, error, started_at, _now(), _span_id(span))

    def _execute(self, step: StepSpec, stop: Stop, span: Span, inline: bool) -> Any:
        """Resolve the step's fields, check them, run the step (with its timeout) and record content."""
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
        if inline:
            output = _call(step_type.execute, fields, context)
        else:
            output = _call_with_timeout(step_type.execute, fields, context)
        try:
            _check_output(output, self.config)
        except ValueError as exc:
            raise StepError(step.name, str(exc)) from exc
        self._record(span, STEP_OUTPUT_EVENT, output)
        return output

    def _record(self, span: Span, event: str, value: Any) -> None:
        """Add a redacted, masked, capped content event when content recording is on."""
        if self.config.record_content and span.is_recording():
            text = content(
                value, keys=self.config.redact_keys, secrets=self.secrets, max_bytes=self.config.content_max_bytes
            )
            span.add_event(event, {EVENT_CONTENT: text})


# The most bytes one character of a string takes in JSON ("\u0000").
_MAX_CHAR_BYTES = 6


def _check_output(value: Any, config: EngineConfig) -> None:
    """ValueError unless the value is JSON within the output size limit."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"output is not JSON-serialisable: {value} is not a JSON number")
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str) and len(value) * _MAX_CHAR_BYTES + 2 <= config.max_output_bytes:
        return  # surely within the limit: skip encoding it
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode())
    except RecursionError:
        raise ValueError("output is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"output is not JSON-serialisable: {exc}") from exc
    if size > config.max_output_bytes:
        raise ValueError(f"output is too large: {size} bytes (max {config.max_output_bytes})")


StepBody = Callable[[Mapping[str, Any], StepContext], Any]


def _call(execute: StepBody, fields: Mapping[str, Any], context: StepContext) -> Any:
    """Run a step body; any error it raises fails the step."""
    try:
        return execute(fields, context)
    except FlowError:
        raise
    except Exception as exc:  # boundary: python-step functions may raise anything; it fails the step
        raise StepError(context.step.name, f"{type(exc).__name__}: {exc}") from exc


def _call_with_timeout(execute: StepBody, fields: Mapping[str, Any], context: StepContext) -> Any:
    """Run a step body on a daemon thread; past the timeout, stop it and abandon it."""
    result: Future[Any] = Future()

    def body() -> None:
        """Run the step body and hand back its result or error."""
        try:
            result.set_result(_call(execute, fields, context))
        except FlowError as exc:
            result.set_exception(exc)

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

"""Flow metrics (RED per flow and step), recorded by services at three points; in memory, never raising.

Names and units follow the OpenTelemetry naming rules (our `flowexec.` namespace, UCUM units, no ids
as attributes: flow and step names are bounded by the stored definitions). Histograms are recorded in
the execution's or step's span context, so the SDK's trace-based exemplar filter links their points to
the trace. Only the OpenTelemetry metrics API is used here: with no MeterProvider every call is a no-op.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace

from tracing import attributes as keys

logger = logging.getLogger(__name__)

EXECUTION_STARTED = "flowexec.execution.started"
EXECUTION_FINISHED = "flowexec.execution.finished"
EXECUTION_DURATION = "flowexec.execution.duration"
EXECUTION_QUEUE_DURATION = "flowexec.execution.queue.duration"
EXECUTION_ACTIVE = "flowexec.execution.active"
STEP_DURATION = "flowexec.step.duration"
STEP_RETRIES = "flowexec.step.retries"

# Seconds; the HTTP semantic conventions' advice, extended for flows that run minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300)

P = ParamSpec("P")


class FlowMetrics:
    """The flow instruments of one meter."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.started = meter.create_counter(
            EXECUTION_STARTED, unit="{execution}", description="Executions claimed by a runner and started."
        )
        self.finished = meter.create_counter(
            EXECUTION_FINISHED, unit="{execution}", description="Executions finished, by final status."
        )
        self.duration = meter.create_histogram(
            EXECUTION_DURATION,
            unit="s",
            description="Execution run time, from start to finish.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.queue_duration = meter.create_histogram(
            EXECUTION_QUEUE_DURATION,
            unit="s",
            description="Time from submission to start (sync, in-process pool or Celery worker).",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.active = meter.create_up_down_counter(
            EXECUTION_ACTIVE, unit="{execution}", description="Executions running in this process."
        )
        self.step_duration = meter.create_histogram(
            STEP_DURATION,
            unit="s",
            description="Step run time over all its attempts, by final status.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.step_retries = meter.create_counter(
            STEP_RETRIES, unit="{retry}", description="Step attempts after the first."
        )


_metrics: FlowMetrics | None = None


def _instruments() -> FlowMetrics:
    """The instruments of the global meter (a proxy until a MeterProvider is set, then the real one)."""
    global _metrics
    if _metrics is None:
        # Lazy: read once, when the first instrument is made, not when services import this module.
        from flowexec import __version__

        _metrics = FlowMetrics(metrics.get_meter(keys.TRACER_NAME, __version__))
    return _metrics


def _never_raises(function: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            function(*args, **kwargs)
        except Exception:  # boundary: a metric must never fail the execution or the request recording it
            logger.debug("recording %s failed", function.__name__, exc_info=True)

    return wrapper


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def _span_context(trace_id: str, span_id: str | None) -> otel_context.Context | None:
    """A context whose current span is (trace_id, span_id), for exemplars recorded after the span ended."""
    if not trace_id or not span_id:
        return None
    span_context = trace.SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


@_never_raises
def execution_started(execution: Any, *, started_at: datetime) -> None:
    """An execution was claimed by this runner: count it, add it to the active ones, record its queue wait."""
    instruments = _instruments()
    flow = {keys.FLOW_NAME: execution.flow_name}
    instruments.started.add(1, flow)
    instruments.active.add(1, flow)
    waited = _seconds(execution.created_at, started_at)
    if waited is not None:
        instruments.queue_duration.record(waited, flow)


@_never_raises
def execution_finished(execution: Any, *, ran_here: bool = True) -> None:
    """A started execution finished (any status): count it by status, record its duration, remove it from active.

    `ran_here=False` is a dead runner's execution failed by a sweep: it was active in that process, not this one.
    """
    instruments = _instruments()
    flow = {keys.FLOW_NAME: execution.flow_name}
    attributes = {**flow, keys.FLOW_EXECUTION_STATUS: execution.status}
    if ran_here:
        instruments.active.add(-1, flow)
    instruments.finished.add(1, attributes)
    duration = _seconds(execution.started_at, execution.finished_at)
    if duration is not None:
        instruments.duration.record(
            duration, attributes, context=_span_context(execution.trace_id, execution.span_id)
        )


@_never_raises
def step_finished(execution: Any, outcome: Any) -> None:
    """A step ended over all its attempts: record its duration by status, and its retries."""
    instruments = _instruments()
    step = {keys.FLOW_NAME: execution.flow_name, keys.FLOW_STEP_NAME: outcome.name, keys.FLOW_STEP_TYPE: outcome.type}
    duration = _seconds(outcome.started_at, outcome.finished_at)
    if duration is not None:
        instruments.step_duration.record(
            duration,
            {**step, keys.FLOW_STEP_STATUS: outcome.status},
            context=_span_context(execution.trace_id, outcome.span_id),
        )
    if outcome.attempts > 1:
        instruments.step_retries.add(outcome.attempts - 1, step)

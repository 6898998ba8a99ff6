"""Open spans of a trace's unfinished executions, from their rows: the store only receives spans when they end."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME

from executions.models import Execution, StepRun
from tracing import attributes as keys
from tracing.store.selectors import OpenSpan

DEFAULT_SERVICE = "flowexec-service"
UNFINISHED = [Execution.Status.PENDING, Execution.Status.RUNNING]


def step_span_id(step_run: StepRun) -> str:
    """A stand-in span id for a running step (its real id is known only when it ends); never a random id."""
    return f"{step_run.pk:016x}"[-16:]


def execution_span_id(execution: Execution) -> str:
    """The execution span's id, or a stand-in while the row does not carry it yet."""
    return execution.span_id or execution.pk.hex[:16]


def open_spans(trace_id: str) -> list[OpenSpan]:
    """The execution and step spans of the trace's running executions, plus finished steps not stored yet."""
    executions = list(
        Execution.objects.filter(trace_id=trace_id, status__in=UNFINISHED)
        .exclude(started_at=None)
        .prefetch_related("step_runs")
    )
    spans: list[OpenSpan] = []
    running_flow_steps: dict[object, list[StepRun]] = {}
    for execution in executions:
        steps = list(execution.step_runs.all())
        running_flow_steps[execution.pk] = [
            step for step in steps if step.status == StepRun.Status.RUNNING and step.type == "flow"
        ]
        spans.extend(_step_span(execution, step) for step in steps if step.started_at is not None)
    for execution in executions:
        spans.append(_execution_span(execution, _spawning_step(execution, running_flow_steps)))
    return spans


def _execution_span(execution: Execution, parent_id: str) -> OpenSpan:
    attributes = {
        keys.FLOW_NAME: execution.flow_name,
        keys.FLOW_VERSION: execution.flow_version,
        keys.FLOW_EXECUTION_ID: str(execution.pk),
        keys.FLOW_CLIENT: execution.client,
    }
    return OpenSpan(
        span_id=execution_span_id(execution),
        parent_id=parent_id,
        name=keys.EXECUTE_FLOW_SPAN.format(flow=execution.flow_name),
        start_time=execution.started_at,
        # A child execution runs in its parent's process; a root one in whichever serves this trace.
        service_name="" if parent_id else _service_name(),
        attributes=attributes,
    )


def _service_name() -> str:
    """This process's service.name, as its TracerProvider's resource has it (the configuration decided it)."""
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    return str(resource.attributes.get(SERVICE_NAME, DEFAULT_SERVICE)) if resource is not None else DEFAULT_SERVICE


def _step_span(execution: Execution, step: StepRun) -> OpenSpan:
    running = step.status == StepRun.Status.RUNNING
    attributes = {keys.FLOW_STEP_NAME: step.name, keys.FLOW_STEP_TYPE: step.type, keys.FLOW_STEP_ATTEMPT: step.attempts}
    return OpenSpan(
        span_id=step_span_id(step) if running or not step.span_id else step.span_id,
        parent_id=execution_span_id(execution),
        name=keys.STEP_SPAN.format(step=step.name),
        start_time=step.started_at,
        end_time=None if running else step.finished_at or step.started_at,
        status="ERROR" if step.status == StepRun.Status.FAILED else "UNSET",
        status_message=step.error if step.status == StepRun.Status.FAILED else "",
        attributes=attributes,
    )


def _spawning_step(execution: Execution, running_flow_steps: dict[object, list[StepRun]]) -> str:
    """The running `flow` step of the parent that started this child: the latest one started before it."""
    candidates = [
        step
        for step in running_flow_steps.get(execution.parent_id, [])
        if step.started_at is not None and step.started_at <= execution.created_at
    ]
    if not candidates:
        return ""
    return step_span_id(max(candidates, key=lambda step: step.started_at))

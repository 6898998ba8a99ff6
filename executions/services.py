"""Every write to flows, executions and step runs; the `execute_flow {flow}` span."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from executions import conf, dispatch, engine, runner, selectors
from executions import metrics as flow_metrics
from executions.engine import EngineConfig, FlowDefinition, RunResult, StepOutcome, StepSpec
from executions.engine.errors import FlowError, FlowValidationError
from executions.models import Execution, Flow, FlowName, StepRun
from tracing import attributes as keys
from tracing import conf as tracing_conf

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(keys.TRACER_NAME)

INTERRUPTED = "interrupted: the process running it ({runner}) stopped before it finished"


@functools.lru_cache(maxsize=8)
def _python_functions(extra_paths: tuple[str, ...]) -> dict[str, Any]:
    return {**engine.builtin_functions(), **engine.load_functions(extra_paths)}


def engine_config() -> EngineConfig:
    """Build the engine's configuration from settings (read at call time)."""
    return EngineConfig(
        python_functions=_python_functions(tuple(conf.get("FLOWEXEC_PYTHON_FUNCTIONS"))),
        http_allowed_hosts=frozenset(conf.get("FLOWEXEC_HTTP_ALLOWED_HOSTS")),
        max_workers=int(conf.get("FLOWEXEC_STEP_WORKERS")),
        max_definition_bytes=int(conf.get("FLOWEXEC_MAX_DEFINITION_BYTES")),
        max_depth=int(conf.get("FLOWEXEC_MAX_FLOW_DEPTH")),
        default_step_timeout=conf.get("FLOWEXEC_DEFAULT_STEP_TIMEOUT"),
        record_content=bool(tracing_conf.get("FLOWEXEC_RECORD_CONTENT")),
        redact_keys=frozenset(tracing_conf.get("FLOWEXEC_REDACT_KEYS")),
        content_max_bytes=int(tracing_conf.get("FLOWEXEC_CONTENT_MAX_BYTES")),
    )


# --- flows -------------------------------------------------------------------------------


def _same_definition(stored: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """Compare definitions ignoring `version`, which the store assigns."""
    return {k: v for k, v in stored.items() if k != "version"} == {
        k: v for k, v in document.items() if k != "version"
    }


def flow_save(*, source: str | bytes | Mapping[str, Any], name: str | None = None) -> tuple[Flow, bool]:
    """Validate a definition and store it as a new version when it changed; return (flow, created)."""
    definition = engine.parse(source, config=engine_config())
    if name is not None and definition.name != name:
        raise FlowValidationError([f'"name": the definition names "{definition.name}", the URL "{name}"'])
    for _ in range(3):
        try:
            return _flow_store_version(definition)
        except IntegrityError:
            # Another writer took this version number first; read again and retry.
            continue
    raise FlowValidationError([f'flow "{definition.name}": too many concurrent updates, try again'])


def _flow_store_version(definition: FlowDefinition) -> tuple[Flow, bool]:
    with transaction.atomic():
        counter, _ = FlowName.objects.select_for_update().get_or_create(name=definition.name)
        latest = Flow.objects.filter(name=definition.name).order_by("-version").first()
        if latest is not None and _same_definition(latest.definition, definition.document):
            return latest, False
        # Numbers of deleted versions are never given again: the counter only grows.
        version = max(counter.last_version, latest.version if latest else 0) + 1
        FlowName.objects.filter(pk=counter.pk).update(last_version=version)
        document = {**definition.document, "version": version}
        flow = Flow.objects.create(
            name=definition.name, version=version, description=definition.description, definition=document
        )
        return flow, True


def flow_delete(*, name: str, version: int | None = None) -> int:
    """Delete one version of a flow, or every version; executions keep their name and version."""
    flow = selectors.flow_get(name=name, version=version)
    versions = Flow.objects.filter(name=flow.name)
    if version is not None:
        versions = versions.filter(version=version)
    return versions.delete()[0]


# --- executions ----------------------------------------------------------------------------


def execution_create(
    *,
    flow: Flow,
    inputs: Mapping[str, Any],
    client: str = Execution.Client.API,
    request_id: str = "",
    user_agent: str = "",
    user: AbstractBaseUser | None = None,
    parent: Execution | None = None,
) -> Execution:
    """Check the inputs against the flow and store a pending execution."""
    definition = engine.parse(flow.definition, config=engine_config())
    bound = engine.bind_inputs(definition, inputs)
    span_context = trace.get_current_span().get_span_context()
    return Execution.objects.create(
        flow=flow,
        flow_name=flow.name,
        flow_version=flow.version,
        parent=parent,
        inputs=bound,
        client=client,
        request_id=request_id[:128],
        user_agent=user_agent[:512],
        trace_id=trace.format_trace_id(span_context.trace_id) if span_context.is_valid else "",
        # A sub-flow's execution belongs to whoever owns its parent, so they may see and cancel it.
        created_by=user if user is not None and user.is_authenticated else (parent.created_by if parent else None),
    )


def execution_submit(
    *,
    flow: str,
    inputs: Mapping[str, Any],
    wait: bool = True,
    client: str = Execution.Client.API,
    request_id: str = "",
    user_agent: str = "",
    user: AbstractBaseUser | None = None,
) -> Execution:
    """Create an execution and run it now (wait) or hand it to the async backend."""
    execution = execution_create(
        flow=selectors.flow_get(name=flow),
        inputs=inputs,
        client=client,
        request_id=request_id,
        user_agent=user_agent,
        user=user,
    )
    if wait:
        return execution_run(execution=execution)
    dispatch.submit(execution)
    return execution


def execution_run(*, execution: Execution, depth: int = 0) -> Execution:
    """Run the flow to the end; the row always finishes succeeded, failed or cancelled.

    Idempotent: an execution that another runner already claimed or finished is returned as is,
    so a redelivered task does nothing.
    """
    now = timezone.now()
    claimed = Execution.objects.filter(pk=execution.pk, status=Execution.Status.PENDING).update(
        status=Execution.Status.RUNNING, started_at=now, runner=runner.runner_id(), heartbeat_at=now
    )
    if not claimed:
        execution.refresh_from_db()
        return execution
    flow_metrics.execution_started(execution, started_at=now)
    with runner.owning(str(execution.pk)):
        result = _run_traced(execution, depth)
    return _execution_finish(execution, result)


def _run_traced(execution: Execution, depth: int) -> RunResult:
    attributes = {
        keys.FLOW_NAME: execution.flow_name,
        keys.FLOW_VERSION: execution.flow_version,
        keys.FLOW_EXECUTION_ID: str(execution.pk),
        keys.FLOW_CLIENT: execution.client,
    }
    if execution.request_id:
        attributes[keys.REQUEST_ID] = execution.request_id
    span_name = keys.EXECUTE_FLOW_SPAN.format(flow=execution.flow_name)
    with tracer.start_as_current_span(span_name, attributes=attributes, record_exception=False) as span:
        span_context = span.get_span_context()
        # Remote: tracing is off (OTEL_SDK_DISABLED) and the "span" is the caller's, not this execution's.
        if span_context.is_valid and not span_context.is_remote:
            execution.trace_id = trace.format_trace_id(span_context.trace_id)
            execution.span_id = trace.format_span_id(span_context.span_id)
            Execution.objects.filter(pk=execution.pk).update(trace_id=execution.trace_id, span_id=execution.span_id)
        # Boundary: whatever goes wrong inside, the row must still finish with the error.
        try:
            config = engine_config()
            definition = engine.parse(execution.flow.definition if execution.flow else {}, config=config)
            hooks = _StepRecorder(execution)
            result = engine.run(definition, execution.inputs, config=config, hooks=hooks, depth=depth)
        except Exception as exc:
            logger.exception("execution %s crashed", execution.pk)
            span.record_exception(exc)
            result = RunResult(status="failed", outputs={}, error=f"internal error: {exc}", steps=())
        if result.status == "failed":
            span.set_status(Status(StatusCode.ERROR, result.error))
        logger.info("execution %s of %s v%s %s", execution.pk, execution.flow_name, execution.flow_version,
                    result.status)
    return result


def _execution_finish(execution: Execution, result: RunResult) -> Execution:
    """Write the outcome unless the execution was cancelled meanwhile (a cancel wins)."""
    status = {
        "succeeded": Execution.Status.SUCCEEDED,
        "failed": Execution.Status.FAILED,
        "cancelled": Execution.Status.CANCELLED,
    }[result.status]
    Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(
        status=status,
        outputs=result.outputs if result.status == "succeeded" else None,
        error=result.error or "",
        finished_at=timezone.now(),
    )
    execution.refresh_from_db()
    flow_metrics.execution_finished(execution)
    return execution


def execution_cancel(*, execution: Execution) -> Execution:
    """Cancel a pending or running execution: no further step starts; a finished one is unchanged."""
    Execution.objects.filter(
        pk=execution.pk, status__in=[Execution.Status.PENDING, Execution.Status.RUNNING]
    ).update(status=Execution.Status.CANCELLED, error="cancelled on request", finished_at=timezone.now())
    execution.refresh_from_db()
    return execution


def execution_heartbeat(*, execution_ids: list[str]) -> int:
    """Record that this runner is alive for the executions it owns."""
    if not execution_ids:
        return 0
    return Execution.objects.filter(pk__in=execution_ids, runner=runner.runner_id()).update(
        heartbeat_at=timezone.now()
    )


def execution_fail_stale(*, stale_after: timedelta | None = None) -> int:
    """Fail executions whose runner died: it stopped reporting, or it was a process on this host that is gone."""
    if stale_after is None:
        stale_after = timedelta(seconds=float(conf.get("FLOWEXEC_STALE_AFTER")))
    unfinished = Execution.objects.filter(
        status__in=[Execution.Status.PENDING, Execution.Status.RUNNING]
    ).exclude(runner="")
    cutoff = timezone.now() - stale_after
    stale = [
        (pk, owner)
        for pk, owner, heartbeat in unfinished.values_list("pk", "runner", "heartbeat_at")
        if heartbeat is None or heartbeat < cutoff or runner.runner_is_dead_here(owner)
    ]
    failed = 0
    for pk, owner in stale:
        failed += execution_fail(execution_id=pk, reason=INTERRUPTED.format(runner=owner))
    return failed


def execution_fail(*, execution_id: Any, reason: str) -> int:
    """Finish an unfinished execution as failed with `reason`; its running steps fail with it."""
    with transaction.atomic():
        now = timezone.now()
        updated = Execution.objects.filter(
            pk=execution_id, status__in=[Execution.Status.PENDING, Execution.Status.RUNNING]
        ).update(status=Execution.Status.FAILED, error=reason, finished_at=now)
        if updated:
            StepRun.objects.filter(execution_id=execution_id, status=StepRun.Status.RUNNING).update(
                status=StepRun.Status.FAILED, error=reason, finished_at=now
            )
    if updated:
        logger.warning("execution %s failed: %s", execution_id, reason)
    return updated


class _StepRecorder:
    """Engine hooks that record step runs, answer cancellation, and run sub-flows."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.owner_thread = threading.get_ident()

    def step_started(self, step: StepSpec, attempt: int, started_at: datetime) -> None:
        with self._db():
            updated = StepRun.objects.filter(execution=self.execution, name=step.name).update(
                status=StepRun.Status.RUNNING, attempts=attempt
            )
            if not updated:
                StepRun.objects.create(
                    execution=self.execution, name=step.name, type=step.type, attempts=attempt, started_at=started_at
                )

    def step_finished(self, outcome: StepOutcome) -> None:
        with self._db():
            StepRun.objects.update_or_create(
                execution=self.execution,
                name=outcome.name,
                defaults={
                    "type": outcome.type,
                    "status": outcome.status,
                    "output": outcome.output if outcome.status == "succeeded" else None,
                    "error": outcome.error or "",
                    "attempts": outcome.attempts,
                    "started_at": outcome.started_at,
                    "finished_at": outcome.finished_at,
                    "span_id": outcome.span_id or "",
                },
            )
        flow_metrics.step_finished(self.execution, outcome)

    def is_cancelled(self) -> bool:
        with self._db():
            return Execution.objects.filter(pk=self.execution.pk, status=Execution.Status.CANCELLED).exists()

    def run_subflow(
        self, flow: str, inputs: Mapping[str, Any], depth: int, stop: threading.Event | None = None
    ) -> Mapping[str, Any]:
        with self._db():
            child = execution_create(
                flow=selectors.flow_get(name=flow),
                inputs=inputs,
                client=self.execution.client,
                request_id=self.execution.request_id,
                user_agent=self.execution.user_agent,
                parent=self.execution,
            )
            child = execution_run(execution=child, depth=depth)
        if child.status != Execution.Status.SUCCEEDED:
            raise FlowError(f'sub-flow "{flow}" {child.status}: {child.error}')
        return child.outputs or {}

    @contextmanager
    def _db(self) -> Iterator[None]:
        """Close the database connection a pool thread opened, so engine threads never leak connections."""
        try:
            yield
        finally:
            if threading.get_ident() != self.owner_thread:
                connection.close()

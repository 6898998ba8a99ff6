"""Every write to flows, executions and step runs; the `execute_flow {flow}` span."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.signals import setting_changed
from django.db import IntegrityError, connection, transaction
from django.dispatch import receiver
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from executions import conf, engine, runner, selectors, sql, vault
from executions import metrics as flow_metrics
from executions.engine import EngineConfig, FlowDefinition, RunResult, StepOutcome, StepSpec
from executions.engine.errors import ExecutionCancelled, FlowError, FlowValidationError
from executions.engine.spans import CurrentSpan
from executions.models import Execution, Flow, FlowName, StepRun
from tracing import attributes as keys
from tracing import conf as tracing_conf
from tracing import redaction

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(keys.TRACER_NAME)

INTERRUPTED = "interrupted: the process running it ({runner}) stopped before it finished"


@functools.lru_cache(maxsize=8)
def _python_functions(extra_paths: tuple[str, ...]) -> dict[str, Any]:
    return {**engine.builtin_functions(), **engine.load_functions(extra_paths)}


def engine_config() -> EngineConfig:
    """The engine's configuration from settings (read at call time; one object per distinct settings)."""
    return _engine_config(*_engine_settings())


@functools.cache
def _engine_settings() -> tuple[Any, ...]:
    # Cached: read ~5 times per run at ~0.02 ms each; a changed setting clears it (below).
    return (
        tuple(conf.get("FLOWEXEC_PYTHON_FUNCTIONS")),
        frozenset(conf.get("FLOWEXEC_HTTP_ALLOWED_HOSTS")),
        int(conf.get("FLOWEXEC_STEP_WORKERS")),
        int(conf.get("FLOWEXEC_MAX_DEFINITION_BYTES")),
        int(conf.get("FLOWEXEC_MAX_FLOW_DEPTH")),
        conf.get("FLOWEXEC_DEFAULT_STEP_TIMEOUT"),
        bool(tracing_conf.get("FLOWEXEC_RECORD_CONTENT")),
        frozenset(tracing_conf.get("FLOWEXEC_REDACT_KEYS")),
        int(tracing_conf.get("FLOWEXEC_CONTENT_MAX_BYTES")),
    )


@receiver(setting_changed)
def _forget_engine_settings(*, setting: str, **kwargs: Any) -> None:
    """Settings overrides (tests) take effect on the next run."""
    if setting.startswith("FLOWEXEC_"):
        _engine_settings.cache_clear()


@functools.lru_cache(maxsize=8)
def _engine_config(
    python_functions: tuple[str, ...],
    http_allowed_hosts: frozenset[str],
    max_workers: int,
    max_definition_bytes: int,
    max_depth: int,
    default_step_timeout: float | None,
    record_content: bool,
    redact_keys: frozenset[str],
    content_max_bytes: int,
) -> EngineConfig:
    return EngineConfig(
        python_functions=_python_functions(python_functions),
        http_allowed_hosts=http_allowed_hosts,
        max_workers=max_workers,
        max_definition_bytes=max_definition_bytes,
        max_depth=max_depth,
        default_step_timeout=default_step_timeout,
        record_content=record_content,
        redact_keys=redact_keys,
        content_max_bytes=content_max_bytes,
    )


def flow_definition(flow: Flow | None) -> FlowDefinition:
    """The parsed definition of a stored flow version, parsed once per process and settings."""
    return _parsed(_document(flow), _engine_settings())


def _document(flow: Flow | None) -> str:
    return json.dumps(flow.definition if flow else {}, sort_keys=True)


@functools.lru_cache(maxsize=256)
def _parsed(document: str, settings: tuple[Any, ...]) -> FlowDefinition:
    # Keyed by the definition's text and the settings: a stored version never changes, and a
    # changed setting (tests override them) parses again.
    return engine.parse(json.loads(document), config=_engine_config(*settings))


@functools.lru_cache(maxsize=256)
def _instant(document: str, settings: tuple[Any, ...]) -> bool:
    # Keyed as _parsed: asked on every sync submit, and the answer never changes for a version.
    return engine.instant(_parsed(document, settings), _engine_config(*settings))


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

UNFINISHED = (Execution.Status.PENDING, Execution.Status.RUNNING)
# How often a run asks the database whether it was cancelled (the engine polls more often).
CANCEL_CHECK_SECONDS = 0.25
CANCELLED_ON_REQUEST = "cancelled on request"
CANCELLED_WITH_PARENT = "cancelled: its parent execution was cancelled"
STEP_AFTER_CANCEL = "cancelled: finished after its execution was cancelled"
RESULT_STATUS = {
    "succeeded": Execution.Status.SUCCEEDED,
    "failed": Execution.Status.FAILED,
    "cancelled": Execution.Status.CANCELLED,
}


def execution_create(
    *,
    flow: Flow,
    inputs: Mapping[str, Any],
    client: str = Execution.Client.API,
    request_id: str = "",
    user_agent: str = "",
    user: AbstractBaseUser | None = None,
    parent: Execution | None = None,
    owned: bool = True,
) -> Execution:
    """Check the inputs against the flow and store a pending execution.

    `owned`: this process will run it (inline or on its pool), so the row names this runner from
    the start and a crash before the claim is detectable; False leaves it to whoever claims it (Celery).
    """
    execution = _execution_new(flow=flow, inputs=inputs, client=client, request_id=request_id,
                               user_agent=user_agent, user=user, parent=parent, owned=owned)
    sql.insert([execution])
    return execution


def flow_is_instant(flow: Flow) -> bool:
    """True when every step of the flow is pure and instant (engine.instant), so a run takes no real time."""
    return _instant(_document(flow), _engine_settings())


def execution_run_here(
    *,
    flow: Flow,
    inputs: Mapping[str, Any],
    client: str = Execution.Client.API,
    request_id: str = "",
    user_agent: str = "",
    user: AbstractBaseUser | None = None,
) -> Execution:
    """Store an execution already claimed by this thread (one INSERT, no `pending` step) and run it here.

    For a caller that runs it at once in its own thread: nothing can queue it, adopt it or claim it
    between the INSERT and the run, so the row may start `running`. It is committed before any
    step runs, names this runner for crash detection, and finishes like any run (a cancel wins).
    """
    execution = _execution_new(flow=flow, inputs=inputs, client=client, request_id=request_id,
                               user_agent=user_agent, user=user, parent=None, owned=True)
    span = _execution_span(execution)
    claim = _claim_fields(span)
    for name, value in claim.items():
        setattr(execution, name, value)
    sql.insert([execution])
    flow_metrics.execution_started(execution, started_at=claim["started_at"])
    return _execution_drive(execution, span, depth=0, stop=None)


def _execution_new(
    *,
    flow: Flow,
    inputs: Mapping[str, Any],
    client: str,
    request_id: str,
    user_agent: str,
    user: AbstractBaseUser | None,
    parent: Execution | None,
    owned: bool,
) -> Execution:
    definition = flow_definition(flow)
    bound = engine.bind_inputs(definition, inputs)
    hidden = _secret_values(definition, bound)
    span_context = trace.get_current_span().get_span_context()
    return Execution(
        flow=flow,
        flow_name=flow.name,
        flow_version=flow.version,
        parent=parent,
        inputs={**bound, **dict.fromkeys(hidden, redaction.REDACTED)},
        secret_inputs=vault.seal(hidden),
        client=client,
        request_id=request_id[:128],
        user_agent=user_agent[:512],
        trace_id=trace.format_trace_id(span_context.trace_id) if span_context.is_valid else "",
        # A sub-flow's execution belongs to whoever owns its parent, so they may see and cancel it.
        created_by=user if user is not None and user.is_authenticated else (parent.created_by if parent else None),
        runner=runner.runner_id() if owned else "",
        heartbeat_at=timezone.now() if owned else None,
    )


def _secret_values(definition: FlowDefinition, bound: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs kept out of the row: the flow's secret ones, and any carrying a secret of the running
    parent (a sub-flow's input resolved from the parent's secret needs no declaration of its own)."""
    declared = engine.secret_inputs(definition)
    active = redaction.active_secrets()
    return {
        name: value
        for name, value in bound.items()
        if name in declared or (active and redaction.mask_value(value, active) != value)
    }


def execution_run(*, execution: Execution, depth: int = 0, stop: threading.Event | None = None) -> Execution:
    """Run the flow to the end in this thread; the row always finishes succeeded, failed or cancelled.

    Idempotent: an execution that another runner already claimed or finished is returned as is,
    so a redelivered task does nothing. `stop` (a sub-flow's) cancels it when set.
    """
    # Started before the claim so the claim writes the span's ids in the same UPDATE; a span
    # that loses the claim is never ended, hence never exported.
    span = _execution_span(execution)
    if not execution_started(execution=execution, span=span):
        execution.refresh_from_db()
        return execution
    return _execution_drive(execution, span, depth, stop)


def _execution_span(execution: Execution) -> trace.Span:
    return tracer.start_span(
        keys.EXECUTE_FLOW_SPAN.format(flow=execution.flow_name),
        attributes=_span_attributes(execution),
        record_exception=False,
        set_status_on_exception=False,
    )


def _execution_drive(execution: Execution, span: trace.Span, depth: int, stop: threading.Event | None) -> Execution:
    """Run a claimed execution under its span and write the outcome (its steps too) inside that span."""
    recorder = _StepRecorder(execution, stop)
    with runner.owning(str(execution.pk)), CurrentSpan(span):
        result = _run_engine(execution, depth, span, recorder)
        # Writing the outcome is part of the execution: its queries are the execute_flow span's children.
        return execution_finish(execution=execution, result=result, recorder=recorder)


def _span_attributes(execution: Execution) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        keys.FLOW_NAME: execution.flow_name,
        keys.FLOW_VERSION: execution.flow_version,
        keys.FLOW_EXECUTION_ID: str(execution.pk),
        keys.FLOW_CLIENT: execution.client,
    }
    if execution.request_id:
        attributes[keys.REQUEST_ID] = execution.request_id
    return attributes


def execution_started(*, execution: Execution, span: trace.Span) -> bool:
    """Claim a pending execution for this runner (pending -> running); False when another one has it."""
    fields = _claim_fields(span)
    if not Execution.objects.filter(pk=execution.pk, status=Execution.Status.PENDING).update(**fields):
        return False
    for name, value in fields.items():
        setattr(execution, name, value)
    flow_metrics.execution_started(execution, started_at=fields["started_at"])
    return True


def _claim_fields(span: trace.Span) -> dict[str, Any]:
    """What a claim writes: running, started now, by this runner, under `span`."""
    now = timezone.now()
    fields: dict[str, Any] = {"status": Execution.Status.RUNNING, "started_at": now,
                              "runner": runner.runner_id(), "heartbeat_at": now}
    span_context = span.get_span_context()
    # Remote: tracing is off (OTEL_SDK_DISABLED) and the "span" is the caller's, not this execution's.
    if span_context.is_valid and not span_context.is_remote:
        fields["trace_id"] = trace.format_trace_id(span_context.trace_id)
        fields["span_id"] = trace.format_span_id(span_context.span_id)
    return fields


def _run_engine(execution: Execution, depth: int, span: trace.Span, hooks: _StepRecorder) -> RunResult:
    # Masking covers the crash handler too: a crash's log line, span event and error may quote a secret.
    with ExitStack() as masked:
        # Boundary: whatever goes wrong inside, the row must still finish with the error.
        try:
            config = engine_config()
            definition = flow_definition(execution.flow)
            secrets = vault.unseal(execution.secret_inputs)
            masked.enter_context(redaction.masking(secrets.values()))
            result = engine.run(definition, {**execution.inputs, **secrets}, config=config, hooks=hooks,
                                depth=depth, secrets=secrets.values())
        except Exception as exc:
            logger.exception("execution %s crashed", execution.pk)
            redaction.record_exception(span, exc)
            error = redaction.active_mask(f"internal error: {exc}")
            result = RunResult(status="failed", outputs={}, error=error, steps=())
    if result.status == "failed":
        span.set_status(Status(StatusCode.ERROR, result.error))
    logger.info("execution %s of %s v%s %s", execution.pk, execution.flow_name, execution.flow_version,
                result.status)
    return result


def execution_finish(*, execution: Execution, result: RunResult, recorder: _StepRecorder | None = None) -> Execution:
    """Write the outcome unless the execution was cancelled meanwhile (a cancel wins).

    The step rows `recorder` still holds are written first, in one INSERT: steps finish before their
    execution. Two short statements rather than one transaction, so SQLite's write lock is never held
    while Python runs. When this call wrote the outcome, the instance comes back with its step runs
    as written (no need to read them again).
    """
    fields: dict[str, Any] = {
        "status": RESULT_STATUS[result.status],
        "outputs": result.outputs if result.status == "succeeded" else None,
        "error": result.error or "",
        "finished_at": timezone.now(),
        "secret_inputs": "",
    }
    if recorder is not None:
        recorder.flush()
    updated = sql.update(Execution, pk=execution.pk, where={"status": Execution.Status.RUNNING}, values=fields)
    if updated:
        for name, value in fields.items():
            setattr(execution, name, value)
        if recorder is not None:
            recorder.remember_steps()
    else:
        execution.refresh_from_db()
    if execution.status == Execution.Status.CANCELLED:
        _cancel_late_steps(execution)
    flow_metrics.execution_finished(execution)
    return execution


def _cancel_late_steps(execution: Execution) -> None:
    """Nothing is recorded succeeded after a cancel: steps that finished later count as cancelled."""
    StepRun.objects.filter(
        execution=execution, status=StepRun.Status.SUCCEEDED, finished_at__gt=execution.finished_at
    ).update(status=StepRun.Status.CANCELLED, output=None, error=STEP_AFTER_CANCEL)


def execution_cancel(*, execution: Execution) -> Execution:
    """Cancel a pending or running execution and its unfinished descendants; a finished one is unchanged."""
    with transaction.atomic():
        now = timezone.now()
        if _cancel_rows([execution.pk], reason=CANCELLED_ON_REQUEST, now=now):
            _cancel_descendants(execution.pk, now=now)
    execution.refresh_from_db()
    return execution


def _cancel_rows(ids: list[Any], *, reason: str, now: datetime) -> int:
    cancelled = Execution.objects.filter(pk__in=ids, status__in=UNFINISHED).update(
        status=Execution.Status.CANCELLED, error=reason, finished_at=now, secret_inputs=""
    )
    StepRun.objects.filter(execution_id__in=ids, status=StepRun.Status.RUNNING).update(
        status=StepRun.Status.CANCELLED, error=reason, finished_at=now
    )
    return cancelled


def _cancel_descendants(execution_id: Any, *, now: datetime) -> None:
    parents = [execution_id]
    while parents:
        children = list(Execution.objects.filter(parent_id__in=parents, status__in=UNFINISHED)
                        .values_list("pk", flat=True))
        if children:
            _cancel_rows(children, reason=CANCELLED_WITH_PARENT, now=now)
        parents = children


def execution_heartbeat(*, execution_ids: list[str]) -> int:
    """Record that this runner is alive for the executions it owns."""
    if not execution_ids:
        return 0
    return Execution.objects.filter(pk__in=execution_ids, runner=runner.runner_id()).update(
        heartbeat_at=timezone.now()
    )


def execution_fail_stale(*, stale_after: float | None = None) -> int:
    """Fail running executions whose runner died (runner.is_alive says no)."""
    failed = 0
    for pk, owner in selectors.executions_orphaned(status=Execution.Status.RUNNING, stale_after=stale_after):
        failed += execution_fail_orphan(execution_id=pk, reason=INTERRUPTED.format(runner=owner))
    return failed


def execution_fail_orphan(*, execution_id: Any, reason: str) -> int:
    """Fail a running execution whose runner died; it counts as finished here, since its runner never will."""
    updated = execution_fail(execution_id=execution_id, reason=reason)
    if updated:
        flow_metrics.execution_finished(Execution.objects.get(pk=execution_id), ran_here=False)
    return updated


def execution_adopt(*, execution_id: Any, previous_runner: str, owned: bool = True) -> bool:
    """Take over a pending execution whose runner died before it started; False when someone else did."""
    return bool(Execution.objects.filter(
        pk=execution_id, status=Execution.Status.PENDING, runner=previous_runner
    ).update(runner=runner.runner_id() if owned else "", heartbeat_at=timezone.now() if owned else None))


def execution_fail(*, execution_id: Any, reason: str) -> int:
    """Finish an unfinished execution as failed with `reason`; its running steps fail with it."""
    with transaction.atomic():
        now = timezone.now()
        updated = Execution.objects.filter(pk=execution_id, status__in=UNFINISHED).update(
            status=Execution.Status.FAILED, error=reason, finished_at=now, secret_inputs=""
        )
        if updated:
            StepRun.objects.filter(execution_id=execution_id, status=StepRun.Status.RUNNING).update(
                status=StepRun.Status.FAILED, error=reason, finished_at=now
            )
    if updated:
        logger.warning("execution %s failed: %s", execution_id, reason)
    return updated


class _StepRecorder:
    """Engine hooks that record step runs, answer cancellation, and run sub-flows.

    Steps the engine ran inline (pure and instant, on the run's own thread) are kept and written
    together: before the next step that takes time starts, at the next cancellation poll (so within
    about CANCEL_CHECK_SECONDS while other steps run), and at the latest with the outcome.
    """

    def __init__(self, execution: Execution, stop: threading.Event | None = None) -> None:
        self.execution = execution
        self.stop = stop
        self.owner_thread = threading.get_ident()
        self.lock = threading.Lock()
        self.rows: dict[str, StepRun] = {}  # every step's row as last written (or about to be)
        self.unsaved: list[StepRun] = []  # finished inline steps not written yet
        self.cancelled = False
        # The claim just happened: nobody can have cancelled before it, so the first check waits.
        self.checked_at = time.monotonic()

    def step_started(self, step: StepSpec, attempt: int, started_at: datetime) -> None:
        self.flush()
        with self._db():
            row = self.rows.get(step.name)
            if row is None:
                row = StepRun(
                    execution=self.execution, name=step.name, type=step.type, attempts=attempt, started_at=started_at
                )
                sql.insert([row])
                with self.lock:
                    self.rows[step.name] = row
            else:
                StepRun.objects.filter(pk=row.pk, status=StepRun.Status.RUNNING).update(attempts=attempt)
                row.attempts = attempt

    def step_finished(self, outcome: StepOutcome) -> None:
        """Record a finished step: one UPDATE of the row step_started wrote, else an INSERT (inline: later)."""
        fields = {
            "type": outcome.type,
            "status": outcome.status,
            "output": outcome.output if outcome.status == "succeeded" else None,
            "error": outcome.error or "",
            "attempts": outcome.attempts,
            "started_at": outcome.started_at,
            "finished_at": outcome.finished_at,
            "span_id": outcome.span_id or "",
        }
        row = self.rows.get(outcome.name)
        if row is None:
            row = StepRun(execution=self.execution, name=outcome.name, **fields)
            with self.lock:
                self.rows[outcome.name] = row
                self.unsaved.append(row)
            if threading.get_ident() != self.owner_thread:
                self.flush()  # no inline step: nothing to batch it with
        else:
            with self._db():
                # Conditional: a cancel that marked the row cancelled meanwhile wins.
                StepRun.objects.filter(pk=row.pk, status=StepRun.Status.RUNNING).update(**fields)
            for name, value in fields.items():
                setattr(row, name, value)
        flow_metrics.step_finished(self.execution, outcome)

    def flush(self) -> None:
        """Write the finished steps not written yet, in one statement."""
        with self.lock:
            batch, self.unsaved = self.unsaved, []
        if batch:
            with self._db():
                sql.insert(batch)

    def remember_steps(self) -> None:
        """Give the execution its step runs as written, in the model's order, as a prefetch would."""
        rows = sorted(self.rows.values(), key=lambda row: (row.started_at is None, row.started_at, row.pk or 0))
        self.execution._prefetched_objects_cache = {}  # a stale prefetch would answer .all() below
        queryset = self.execution.step_runs.all()
        # What prefetch_related stores: a queryset already evaluated, so .all() answers without a query.
        queryset._result_cache = rows
        queryset._prefetch_done = True
        self.execution._prefetched_objects_cache = {"step_runs": queryset}

    def is_cancelled(self) -> bool:
        self.flush()  # called from the run's thread while other steps run: inline ones show up meanwhile
        if self.cancelled:
            return True
        if self.stop is not None and self.stop.is_set():
            self.cancelled = True
            with self._db():
                execution_cancel(execution=Execution(pk=self.execution.pk))
            return True
        now = time.monotonic()
        if now - self.checked_at < CANCEL_CHECK_SECONDS:
            return False
        self.checked_at = now
        with self._db():
            self.cancelled = Execution.objects.filter(
                pk=self.execution.pk, status=Execution.Status.CANCELLED
            ).exists()
        return self.cancelled

    def run_subflow(
        self, flow: str, inputs: Mapping[str, Any], depth: int, stop: threading.Event | None = None
    ) -> Mapping[str, Any]:
        """Run a child execution; when `stop` is set, cancel it and return at once."""
        with self._db():
            child = execution_create(
                flow=selectors.flow_get(name=flow),
                inputs=inputs,
                client=self.execution.client,
                request_id=self.execution.request_id,
                user_agent=self.execution.user_agent,
                parent=self.execution,
            )
            child = _run_child(child, depth, stop) if stop else execution_run(execution=child, depth=depth)
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


def _run_child(child: Execution, depth: int, stop: threading.Event) -> Execution:
    """Run a sub-flow on its own thread so a set `stop` cancels it and returns without waiting for it."""
    done = threading.Event()
    context = contextvars.copy_context()  # the child's span stays under the calling step's span

    def run_child() -> None:
        # Boundary: the caller may have returned already; a crash here has nobody else to report to.
        try:
            context.run(execution_run, execution=child, depth=depth, stop=stop)
        except Exception:
            logger.exception("sub-flow execution %s crashed", child.pk)
        finally:
            connection.close()
            done.set()

    threading.Thread(target=run_child, name=f"flowexec-subflow-{child.pk}", daemon=True).start()
    while not done.wait(CANCEL_CHECK_SECONDS):
        if stop.is_set():
            execution_cancel(execution=child)
            raise ExecutionCancelled(f'sub-flow "{child.flow_name}" cancelled')
    child.refresh_from_db()
    return child

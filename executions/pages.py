"""What the execution admin pages show, read and shaped outside the admin: steps in dependency order, related
executions, id-prefix search, times to the millisecond and durations in ms or s."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from executions import engine, services
from executions.engine.errors import FlowError
from executions.models import Execution, Flow, StepRun
from tracing.store.selectors import hex_prefix_range
from tracing.waterfall import format_timestamp

# Longest step output shown on the page; the API has the whole of it.
OUTPUT_PREVIEW_CHARS = 2000
# A finished execution's page keeps refreshing this long: its last spans reach the store after a batch delay.
LIVE_AFTER_FINISH = timedelta(seconds=5)
NEVER_STARTED = "never started"
NOT_STARTED_YET = "not started yet"


@dataclass(frozen=True)
class StepRow:
    """One step of the flow as the execution page shows it; a step that never started has no run."""

    name: str
    type: str
    status: str
    status_class: str  # CSS: the run's status, or "never" for a step without a run
    after: list[str]
    attempts: str
    started: str  # full timestamps, to the millisecond
    finished: str
    started_time: str  # the same, time of day only (the page shows the date above)
    finished_time: str
    duration: str
    output: str
    error: str
    child: Execution | None


def format_time_of_day(value: datetime | None) -> str:
    """The time of day in the current time zone, to the millisecond; "-" when unset."""
    return format_timestamp(value)[11:] if value is not None else "-"


def format_duration(value: timedelta | None) -> str:
    """`5.52 ms` (under 10 ms), `12.3 ms`, `1.23 s`, `2 min 3.4 s`; "-" when unset."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.1f} s"


def preview(value: Any, limit: int = OUTPUT_PREVIEW_CHARS) -> str:
    """A value as compact JSON, cut to `limit` characters with a note saying so."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (cut: {len(text)} characters in all)"


def execution_is_live(execution: Execution) -> bool:
    """True while the execution's page should refresh: it runs, or it ended moments ago."""
    if not execution.is_finished:
        return True
    return execution.finished_at is not None and timezone.now() - execution.finished_at < LIVE_AFTER_FINISH


def execution_steps(execution: Execution) -> list[StepRow]:
    """Every step of the execution's flow version in dependency order, with its run if it started."""
    runs = {run.name: run for run in execution.step_runs.all()}
    children = _children_by_step(execution, runs)
    ordered = _dependency_order(execution.flow)
    names = {step.name for step in ordered}
    extra = sorted((run for name, run in runs.items() if name not in names), key=_run_start)
    unstarted = NEVER_STARTED if execution.is_finished else NOT_STARTED_YET
    rows = [_row(step, runs.get(step.name), children.get(step.name), unstarted) for step in ordered]
    return rows + [_row(_DefinedStep(run.name, run.type, []), run, children.get(run.name), unstarted) for run in extra]


def execution_children(execution: Execution) -> list[Execution]:
    """The sub-executions this execution started, in the order they were created."""
    return list(execution.children.order_by("created_at", "id"))


def execution_search(queryset: QuerySet[Execution], term: str) -> QuerySet[Execution]:
    """Executions whose id, trace id or request id starts with `term`, or whose flow is named `term`.

    Hex prefixes of the execution and trace ids are index range scans: a prefix LIKE would not use
    the indexes on PostgreSQL. Request ids are free text, so theirs is a plain prefix match.
    """
    term = term.strip()
    if not term:
        return queryset
    condition = Q(request_id__startswith=term) | Q(flow_name=term)
    hex_digits = term.replace("-", "")
    if bounds := hex_prefix_range(hex_digits):
        low, high = uuid.UUID(bounds[0].ljust(32, "0")), uuid.UUID(bounds[0].ljust(32, "f"))
        condition |= Q(pk__gte=low, pk__lte=high) | Q(trace_id__gte=bounds[0], trace_id__lt=bounds[1])
    return queryset.filter(condition)


def flow_names() -> list[str]:
    """Names of the stored flows, for the list filter (flows are few; executions are many)."""
    return list(Flow.objects.order_by("name").values_list("name", flat=True).distinct())


@dataclass(frozen=True)
class _DefinedStep:
    name: str
    type: str
    after: list[str]


def _dependency_order(flow: Flow | None) -> list[_DefinedStep]:
    """The flow's steps in definition order, each moved after the steps it depends on."""
    if flow is None:
        return []
    pending = _definition_steps(flow.definition)
    placed: list[_DefinedStep] = []
    done: set[str] = set()
    while pending:
        # pending[0] when nothing is ready: only a cycle, which validation rejects, gets here.
        ready = next((step for step in pending if set(step.after) <= done), pending[0])
        pending.remove(ready)
        placed.append(ready)
        done.add(ready.name)
    return placed


def _definition_steps(definition: dict[str, Any]) -> list[_DefinedStep]:
    try:
        parsed = engine.parse(definition, config=services.engine_config())
    except FlowError:
        # A stored version the current settings reject (say, a removed function): declared order and `after`.
        raw = [step for step in definition.get("steps") or [] if isinstance(step, dict)]
        return [
            _DefinedStep(str(step.get("name", "")), str(step.get("type", "")), list(map(str, step.get("after") or [])))
            for step in raw
        ]
    return [_DefinedStep(step.name, step.type, sorted(step.depends_on)) for step in parsed.steps]


def _children_by_step(execution: Execution, runs: dict[str, StepRun]) -> dict[str, Execution]:
    """Child executions by the `flow` step that started them: the latest one started before each child."""
    flow_steps = sorted((run for run in runs.values() if run.type == "flow" and run.started_at), key=_run_start)
    found: dict[str, Execution] = {}
    for child in execution_children(execution):
        spawners = [run for run in flow_steps if run.started_at <= child.created_at and run.name not in found]
        if spawners:
            found[spawners[-1].name] = child
    return found


def _run_start(run: StepRun) -> datetime:
    return run.started_at or datetime.max.replace(tzinfo=timezone.get_current_timezone())


def _row(step: _DefinedStep, run: StepRun | None, child: Execution | None, unstarted: str) -> StepRow:
    if run is None:
        return StepRow(step.name, step.type, unstarted, "never", step.after, "", "-", "-", "-", "-", "-", "", "", None)
    return StepRow(
        name=step.name,
        type=run.type,
        status=run.status,
        status_class=run.status,
        after=step.after,
        attempts=str(run.attempts),
        started=format_timestamp(run.started_at),
        finished=format_timestamp(run.finished_at),
        started_time=format_time_of_day(run.started_at),
        finished_time=format_time_of_day(run.finished_at),
        duration=format_duration(run.duration),
        output=preview(run.output),
        error=run.error,
        child=child,
    )

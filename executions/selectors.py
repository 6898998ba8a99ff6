"""Every read of flows and executions; who may see which execution is decided here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from executions import conf, runner, sql
from executions.engine.errors import FlowNotFound
from executions.models import Execution, Flow

VIEW_ALL_EXECUTIONS = "executions.view_execution"


def flow_get(*, name: str, version: int | None = None) -> Flow:
    """Return the latest version of a flow (or the given version); FlowNotFound otherwise."""
    # Every run starts here: a prepared SELECT (executions.sql) rather than the ORM's compile per call.
    where: dict[str, Any] = {"name": name} if version is None else {"name": name, "version": version}
    flow = sql.first(Flow, where=where, order_by="-version")
    if flow is None:
        raise FlowNotFound(name if version is None else f"{name} v{version}")
    return flow


def flow_list() -> QuerySet[Flow]:
    """Return the latest version of every flow, by name."""
    newest = Flow.objects.filter(name=OuterRef("name")).order_by("-version").values("id")[:1]
    return Flow.objects.filter(id=Subquery(newest)).order_by("name")


def sees_all_executions(user: Any) -> bool:
    """Staff and holders of executions.view_execution see every execution; others only their own."""
    return bool(user.is_staff or user.has_perm(VIEW_ALL_EXECUTIONS))


def executions_visible(user: Any | None) -> QuerySet[Execution]:
    """The executions `user` may see; user=None is an internal caller and sees all."""
    executions = Execution.objects.all()
    if user is None or sees_all_executions(user):
        return executions
    if not user.is_authenticated:
        return executions.none()
    return executions.filter(created_by=user)


def execution_get(*, execution_id: uuid.UUID | str, user: Any | None = None) -> Execution:
    """Return one execution with its step runs; Execution.DoesNotExist when missing or not visible to user."""
    return executions_visible(user).prefetch_related("step_runs").select_related("flow").get(pk=execution_id)


def execution_to_run(*, execution_id: uuid.UUID | str) -> Execution:
    """Return one execution with its flow, what running it needs (no step runs); Execution.DoesNotExist."""
    return Execution.objects.select_related("flow").get(pk=execution_id)


def execution_list(*, user: Any | None = None) -> QuerySet[Execution]:
    """Return the executions visible to user, newest first, with what the API and admin show of them."""
    return executions_visible(user).select_related("flow").prefetch_related("step_runs").order_by("-created_at")


def trace_visible(*, trace_id: str, user: Any) -> bool:
    """Staff see every trace; others a trace holding an execution they may see."""
    return bool(user.is_staff) or executions_visible(user).filter(trace_id=trace_id).exists()


def visible_trace_ids(user: Any) -> QuerySet[Execution] | None:
    """Trace ids of the executions user may see (a subquery), or None when user sees every trace."""
    if user.is_staff:
        return None
    return executions_visible(user).exclude(trace_id="").values("trace_id")


def traces_closed_to(*, trace_ids: Iterable[str], user: Any) -> set[str]:
    """Of trace_ids, those holding an execution that user may not see (user may not write spans into them)."""
    if user is None or user.is_staff or sees_all_executions(user):
        return set()
    ids = set(trace_ids)
    others = Execution.objects.filter(trace_id__in=ids)
    if user.is_authenticated:
        others = others.exclude(created_by=user)
    return set(others.values_list("trace_id", flat=True).distinct())


def executions_orphaned(*, status: str, stale_after: float | None = None) -> list[tuple[Any, str]]:
    """(id, runner) of executions in `status` owned by a runner that is not alive (runner.is_alive)."""
    stale_after = conf.seconds("FLOWEXEC_STALE_AFTER") if stale_after is None else stale_after
    now = timezone.now()
    owned = Execution.objects.filter(status=status).exclude(runner="")
    return [
        (pk, owner)
        for pk, owner, heartbeat in owned.values_list("pk", "runner", "heartbeat_at")
        if not runner.is_alive(owner, heartbeat, now=now, stale_after=stale_after)
    ]

"""Every read of flows and executions."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from executions import conf, runner
from executions.engine.errors import FlowNotFound
from executions.models import Execution, Flow


def flow_get(*, name: str, version: int | None = None) -> Flow:
    """Return the latest version of a flow (or the given version); FlowNotFound otherwise."""
    versions = Flow.objects.filter(name=name)
    if version is not None:
        versions = versions.filter(version=version)
    flow = versions.order_by("-version").first()
    if flow is None:
        raise FlowNotFound(name)
    return flow


def flow_list() -> QuerySet[Flow]:
    """Return the latest version of every flow, by name."""
    newest = Flow.objects.filter(name=OuterRef("name")).order_by("-version").values("id")[:1]
    return Flow.objects.filter(id=Subquery(newest)).order_by("name")


def execution_get(*, execution_id: uuid.UUID | str) -> Execution:
    """Return one execution with its step runs; Execution.DoesNotExist otherwise."""
    return Execution.objects.prefetch_related("step_runs").select_related("flow").get(pk=execution_id)


def execution_list() -> QuerySet[Execution]:
    """Return executions newest first, with what the API and admin show of them."""
    return Execution.objects.select_related("flow").prefetch_related("step_runs").order_by("-created_at")


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

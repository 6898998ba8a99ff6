"""Every read of flows and executions."""

from __future__ import annotations

import uuid

from django.db.models import OuterRef, QuerySet, Subquery

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

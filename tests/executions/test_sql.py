"""The hot path's prepared statements read and write rows exactly as the ORM does, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from executions import selectors, services, sql
from executions.models import Execution, Flow, StepRun

pytestmark = pytest.mark.django_db


def _values(instance: Any) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_first_reads_the_row_the_orm_reads(make_flow: Any) -> None:
    steps = [{"name": "a", "type": "template", "template": "x"}]
    make_flow(name="twice", description="first", inputs={"n": {"type": "integer", "default": 1}}, steps=steps)
    make_flow(name="twice", description="second", steps=steps)
    latest = sql.first(Flow, where={"name": "twice"}, order_by="-version")
    oldest = sql.first(Flow, where={"name": "twice"}, order_by="version")
    assert _values(latest) == _values(Flow.objects.get(name="twice", version=2))
    assert _values(oldest) == _values(Flow.objects.get(name="twice", version=1))
    assert oldest.definition["inputs"] == {"n": {"type": "integer", "default": 1}}
    assert latest.created_at.tzinfo is not None and not latest._state.adding
    assert sql.first(Flow, where={"name": "twice", "version": 3}, order_by="-version") is None
    assert selectors.flow_get(name="twice", version=1).description == "first"


def test_insert_writes_what_the_orm_reads_back_and_takes_the_databases_ids(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}], inputs={"k": {"type": "string"}})
    execution = services.execution_create(flow=flow, inputs={"k": "v"}, request_id="r-1")
    assert not execution._state.adding
    assert _values(Execution.objects.get(pk=execution.pk)) == _values(execution)
    now = timezone.now()
    steps = [StepRun(execution=execution, name=name, type="template", status="succeeded", output={"n": [1, None]},
                     attempts=1, started_at=now, finished_at=now) for name in ("a", "b")]
    sql.insert(steps)
    assert connection.features.can_return_rows_from_bulk_insert  # SQLite >= 3.35 and PostgreSQL: ids come back
    stored = {step.pk: _values(step) for step in StepRun.objects.filter(execution=execution)}
    assert stored == {step.pk: _values(step) for step in steps}


def test_update_changes_the_row_only_while_it_matches(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    execution = services.execution_create(flow=flow, inputs={})
    done = {"status": Execution.Status.SUCCEEDED, "outputs": {"out": "x"}, "finished_at": timezone.now()}
    assert sql.update(Execution, pk=execution.pk, where={"status": Execution.Status.RUNNING}, values=done) == 0
    assert sql.update(Execution, pk=execution.pk, where={"status": Execution.Status.PENDING}, values=done) == 1
    stored = Execution.objects.get(pk=execution.pk)
    assert (stored.status, stored.outputs, stored.finished_at) == (done["status"], done["outputs"], done["finished_at"])


def test_insert_of_more_rows_than_one_statement_may_bind_writes_them_all(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    execution = services.execution_create(flow=flow, inputs={})
    steps = [StepRun(execution=execution, name=f"s{i}", type="template") for i in range(250)]  # SQLite: 99 a statement
    sql.insert(steps)
    assert sorted(StepRun.objects.filter(execution=execution).values_list("pk", flat=True)) == sorted(
        step.pk for step in steps
    )

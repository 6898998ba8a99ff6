"""What the Celery path costs per execution: statements on each side, and the worker's connection."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext


def _selects(queries: CaptureQueriesContext, table: str) -> list[str]:
    return [sql for sql in (q["sql"] for q in queries.captured_queries)
            if sql.startswith("SELECT") and f'FROM "{table}"' in sql]


def test_a_queued_execution_is_answered_without_reading_its_row_again(make_flow, settings, monkeypatch):
    from executions import submission, tasks
    from executions.models import Execution

    settings.FLOWEXEC_BROKER_URL = "redis://127.0.0.1:6379/15"
    published: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.run_execution, "apply_async", lambda args, **_: published.append(args))
    flow = make_flow(steps=[{"name": "hello", "type": "template", "template": "hi"}])

    with CaptureQueriesContext(connection) as queries:
        execution = submission.execution_submit(flow=flow.name, inputs={}, wait=False)

    assert published == [(str(execution.pk),)]
    assert execution.status == Execution.Status.PENDING
    assert _selects(queries, "executions_execution") == []


@pytest.mark.django_db(transaction=True)
def test_the_task_reads_its_execution_once_and_never_its_step_runs(make_flow):
    from executions import services, tasks
    from executions.models import Execution

    flow = make_flow(steps=[{"name": "hello", "type": "template", "template": "hi"}])
    execution = services.execution_create(flow=flow, inputs={}, owned=False)

    with CaptureQueriesContext(connection) as queries:
        result = tasks.run_execution.apply(args=[str(execution.pk)])

    assert result.result == Execution.Status.SUCCEEDED
    assert len(_selects(queries, "executions_execution")) == 1
    assert _selects(queries, "executions_steprun") == []


@pytest.fixture
def worker_connections():
    """This process's connection settings as a worker process sets them, restored afterwards."""
    from django.db import connections

    from flowexec import celery

    saved = {alias: dict(connections.settings[alias]) for alias in connections}
    connection.close()
    celery._keep_connections()
    yield
    connection.close()
    for alias, values in saved.items():
        connections.settings[alias].clear()
        connections.settings[alias].update(values)


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_keeps_its_connection_across_tasks_and_drops_a_broken_one(worker_connections,
                                                                                    monkeypatch):
    from celery.fixups.django import DjangoWorkerFixup

    from executions.models import Execution
    from flowexec import celery

    fixup = DjangoWorkerFixup(celery.app)  # what Celery runs around every task in a worker
    task = SimpleNamespace(request=SimpleNamespace(is_eager=False))

    def one_task() -> None:
        for boundary in (fixup.on_task_prerun, celery._task_boundary):
            boundary(sender=task)
        Execution.objects.count()
        for boundary in (fixup.on_task_postrun, celery._task_boundary):
            boundary(sender=task)

    one_task()
    kept = connection.connection
    assert kept is not None
    one_task()
    assert connection.connection is kept

    connection.errors_occurred = True
    monkeypatch.setattr(connection, "is_usable", lambda: False)
    celery._task_boundary(sender=task)
    assert connection.connection is None

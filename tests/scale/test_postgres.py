"""Execution state under concurrent runners, on the suite's database (PostgreSQL in the second CI run)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def _concurrently(count: int, target: Any) -> list[Any]:
    """Run target() in `count` threads released at once; each closes its own connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = target()
        except Exception as exc:  # reported by the assertion below, not lost in a thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_runners_of_one_execution_run_the_flow_once(make_flow, spans):
    from executions import services
    from executions.models import Execution

    flow = make_flow(steps=[
        {"name": "hello", "type": "template", "template": "hi"},
        {"name": "pause", "type": "sleep", "seconds": 0.2, "after": ["hello"]},
    ])
    execution = services.execution_create(flow=flow, inputs={})

    results = _concurrently(
        6, lambda: services.execution_run(execution=Execution.objects.select_related("flow").get(pk=execution.pk))
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert sorted(execution.step_runs.values_list("name", "attempts")) == [("hello", 1), ("pause", 1)]
    assert len(spans.all_named(f"execute_flow {flow.name}")) == 1


def test_fail_and_finish_racing_leave_one_outcome(make_flow):
    from executions import services
    from executions.models import Execution

    flow = make_flow(steps=[{"name": "pause", "type": "sleep", "seconds": 0.3}])
    execution = services.execution_create(flow=flow, inputs={})
    results = _concurrently(2, lambda: services.execution_run(execution=execution))
    assert not [r for r in results if isinstance(r, Exception)], results
    # The run finished it: a late "its worker died" must not overwrite the outcome.
    assert services.execution_fail(execution_id=execution.pk, reason="late") == 0
    execution.refresh_from_db()
    assert (execution.status, execution.error) == (Execution.Status.SUCCEEDED, "")


def test_postgresql_runs_on_psycopg_3():
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("DATABASE_URL is not PostgreSQL; scripts/test.sh runs the suite again with it")
    import psycopg

    assert connection.vendor == "postgresql"
    connection.ensure_connection()
    assert isinstance(connection.connection, psycopg.Connection)

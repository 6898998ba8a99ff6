"""executions/tasks.py: what a delivery of run_execution does with the row it finds."""

from __future__ import annotations

import pytest
from django.db import OperationalError


@pytest.mark.django_db(transaction=True)
def test_a_database_error_before_the_run_retries_the_task_instead_of_leaving_the_row_pending(make_flow, monkeypatch):
    from executions import selectors, services, tasks
    from executions.models import Execution

    flow = make_flow(steps=[{"name": "hello", "type": "template", "template": "hi"}])
    execution = services.execution_create(flow=flow, inputs={}, owned=False)
    real = selectors.execution_to_run
    calls = []

    def fails_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return real(**kwargs)

    monkeypatch.setattr(selectors, "execution_to_run", fails_once)
    # apply() runs a retry at once, in this process, as an eager task does.
    result = tasks.run_execution.apply(args=[str(execution.pk)])
    assert len(calls) == 2
    assert result.result == Execution.Status.SUCCEEDED
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED

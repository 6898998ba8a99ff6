"""The admin: executions listed with filters and id search, read-only history, cancel action."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from executions import services, submission
from executions.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def executions(make_flow: Any) -> list[Execution]:
    make_flow(name="hello", steps=[{"name": "a", "type": "template", "template": "x"}])
    make_flow(name="broken", steps=[{"name": "boom", "type": "fail"}])
    runs = [
        submission.execution_submit(flow="hello", inputs={}, inline=True, request_id="req-one"),
        submission.execution_submit(flow="broken", inputs={}, inline=True, request_id="req-two"),
    ]
    # Known trace ids, so the search test does not depend on tracing being enabled.
    for run, trace_id in zip(runs, ["1" * 32, "2" * 32], strict=True):
        Execution.objects.filter(pk=run.pk).update(trace_id=trace_id)
        run.refresh_from_db()
    return runs


def test_execution_list_shows_status_flow_and_ids(staff_client: Client, executions: list[Execution]) -> None:
    page = staff_client.get("/admin/executions/execution/").content.decode()
    for execution in executions:
        assert str(execution.pk) in page and execution.request_id in page and execution.trace_id in page
    assert "succeeded" in page and "failed" in page


def test_execution_list_filters_and_searches_by_ids(staff_client: Client, executions: list[Execution]) -> None:
    failed = staff_client.get("/admin/executions/execution/?status__exact=failed").content.decode()
    assert "req-two" in failed and "req-one" not in failed
    by_request = staff_client.get("/admin/executions/execution/?q=req-one").content.decode()
    assert str(executions[0].pk) in by_request and str(executions[1].pk) not in by_request
    by_trace = staff_client.get(f"/admin/executions/execution/?q={executions[1].trace_id}").content.decode()
    assert str(executions[1].pk) in by_trace and str(executions[0].pk) not in by_trace


def test_execution_page_is_read_only_with_step_runs(staff_client: Client, executions: list[Execution]) -> None:
    failed = executions[1]
    page = staff_client.get(f"/admin/executions/execution/{failed.pk}/change/").content.decode()
    assert "boom" in page and html.escape(failed.error) in page
    assert 'name="_save"' not in page
    response = staff_client.post(f"/admin/executions/execution/{failed.pk}/change/", {"status": "succeeded"})
    assert response.status_code == 403
    failed.refresh_from_db()
    assert failed.status == Execution.Status.FAILED


def test_cancel_action_cancels_unfinished_executions(staff_client: Client, make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    pending = services.execution_create(flow=flow, inputs={})
    response = staff_client.post(
        "/admin/executions/execution/", {"action": "cancel_selected", "_selected_action": [str(pending.pk)]}
    )
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == Execution.Status.CANCELLED


def test_admin_refuses_non_staff(executions: list[Execution]) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("bob", password="pw"))
    response = client.get("/admin/executions/execution/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

"""The admin: executions listed with filters and id search, read-only history, cancel action."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from executions import pages, services, submission
from executions.models import Execution, StepRun

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


def step_rows(page: str) -> list[tuple[str, str]]:
    """(step, status) of each row of the execution page's step table, in page order."""
    return re.findall(r'<tr class="step-row" data-step="([^"]+)">.*?<td class="step-[\w-]+">([^<]+)</td>', page, re.S)


def test_execution_page_lists_every_step_in_dependency_order_never_started_ones_too(
    staff_client: Client, make_flow: Any
) -> None:
    make_flow(name="ordered", steps=[
        {"name": "report", "type": "template", "template": "${steps.fetch.output}"},
        {"name": "fetch", "type": "template", "template": "data"},
        {"name": "boom", "type": "fail", "after": ["fetch"]},
        {"name": "later", "type": "template", "template": "x", "after": ["boom"]},
    ])  # fmt: skip
    execution = submission.execution_submit(flow="ordered", inputs={}, inline=True)
    page = staff_client.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
    rows = step_rows(page)
    assert [name for name, _ in rows] == ["fetch", "report", "boom", "later"]
    assert dict(rows)["later"] == "never started" and dict(rows)["boom"] == "failed"
    assert dict(rows)["fetch"] == "succeeded"


def test_execution_page_shows_milliseconds_readable_durations_and_capped_output(
    staff_client: Client, make_flow: Any
) -> None:
    make_flow(name="big", steps=[{"name": "long", "type": "template", "template": "y" * 5000}])
    execution = submission.execution_submit(flow="big", inputs={}, inline=True)
    start = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    step_end = start + timedelta(microseconds=5519)
    StepRun.objects.filter(execution=execution).update(started_at=start, finished_at=step_end)
    Execution.objects.filter(pk=execution.pk).update(started_at=start, finished_at=start + timedelta(seconds=2.5))
    page = staff_client.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
    assert "2026-01-02 03:04:05.123" in page and ">03:04:05.123<" in page and "5.52 ms" in page and "2.50 s" in page
    assert "0:00:00.005519" not in page and "0:00:02.5" not in page
    assert "y" * pages.OUTPUT_PREVIEW_CHARS in page and "y" * (pages.OUTPUT_PREVIEW_CHARS + 1) not in page
    assert "cut: 5000 characters in all" in page
    listing = staff_client.get("/admin/executions/execution/").content.decode()
    assert "2.50 s" in listing and "0:00:02.5" not in listing


def test_parent_and_child_executions_link_to_each_other(staff_client: Client, make_flow: Any) -> None:
    make_flow(name="leaf", steps=[{"name": "hi", "type": "template", "template": "hi"}])
    make_flow(name="outer", steps=[{"name": "sub", "type": "flow", "flow": "leaf"}])
    parent = submission.execution_submit(flow="outer", inputs={}, inline=True)
    child = Execution.objects.get(parent=parent)
    parent_page = staff_client.get(f"/admin/executions/execution/{parent.pk}/change/").content.decode()
    child_url = f"/admin/executions/execution/{child.pk}/change/"
    assert parent_page.count(f'href="{child_url}"') == 2  # the child list and the `sub` step's row
    child_page = staff_client.get(child_url).content.decode()
    assert f'href="/admin/executions/execution/{parent.pk}/change/"' in child_page


FIRST, SECOND = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", "1b9d6bce-0000-4000-8000-000000000000"


def test_execution_list_finds_executions_by_any_prefix_of_their_id(staff_client: Client) -> None:
    for pk in (FIRST, SECOND):
        Execution.objects.create(id=pk, flow_name="x", flow_version=1)
    expected = {
        "1b9d": [FIRST, SECOND], "1b9d6bcd": [FIRST], "1B9D6BCD-BB": [FIRST], "1b9d6bcdbbfd4b": [FIRST],
        FIRST: [FIRST], "1b9d6bcf": [],
    }  # fmt: skip
    for term, ids in expected.items():
        page = staff_client.get("/admin/executions/execution/", {"q": term}).content.decode()
        assert [pk for pk in (FIRST, SECOND) if pk in page] == ids, term


def test_execution_list_finds_executions_by_a_prefix_of_trace_or_request_id(
    staff_client: Client, executions: list[Execution]
) -> None:
    def found(term: str) -> list[str]:
        page = staff_client.get("/admin/executions/execution/", {"q": term}).content.decode()
        return [str(e.pk) for e in executions if str(e.pk) in page]

    Execution.objects.filter(pk=executions[0].pk).update(trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    assert found("4bf9") == [str(executions[0].pk)]
    assert found("4BF92F3577B34DA6A3CE929D0E0E4736") == [str(executions[0].pk)]
    assert found("2222") == [str(executions[1].pk)]
    assert found("req-t") == [str(executions[1].pk)] and found("req-") == [str(e.pk) for e in executions]
    assert found("hello") == [str(executions[0].pk)]


def test_execution_list_never_counts_the_whole_table(staff_client: Client, executions: list[Execution]) -> None:
    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get("/admin/executions/execution/").content.decode()
    assert str(executions[0].pk) in page and "2 executions" in page
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper() and "executions_execution" in q["sql"]]


def test_a_running_execution_lists_its_later_steps_as_not_started_yet(staff_client: Client, make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "first", "type": "template", "template": "x"}])
    execution = services.execution_create(flow=flow, inputs={})
    Execution.objects.filter(pk=execution.pk).update(status=Execution.Status.RUNNING)
    page = staff_client.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
    assert step_rows(page) == [("first", "not started yet")]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plan")
def test_execution_list_page_is_read_through_an_index_not_a_sort_of_the_table(
    staff_client: Client, executions: list[Execution]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        staff_client.get("/admin/executions/execution/")
    (page_query,) = [q["sql"] for q in queries if q["sql"].startswith('SELECT "executions_execution"."id"')]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {page_query}")
        plan = [row[-1] for row in cursor.fetchall()]
    assert not [step for step in plan if "TEMP B-TREE" in step], plan

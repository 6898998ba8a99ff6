"""The execution admin page draws its trace as a waterfall; the span admin searches by trace id."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from executions.models import Execution, StepRun
from tracing.store.rows import span_row
from tracing.store.writer import write_rows
from tracing.waterfall import trace_waterfall

pytestmark = pytest.mark.django_db

TRACE = "ab" * 16
OTHER = "cd" * 16
MS = 1_000_000
# name, span id, parent id, service, start ms, duration ms, status
SPANS = [
    ("flowexec run", "a" * 16, "", "flowexec-cli", 0, 400, "UNSET"),
    ("POST api/executions/", "b" * 16, "a" * 16, "flowexec-service", 20, 360, "UNSET"),
    ("execute_flow greet", "c" * 16, "b" * 16, "flowexec-service", 40, 300, "OK"),
    ("step shout", "e" * 16, "c" * 16, "flowexec-service", 240, 100, "ERROR"),
    ("step hello", "d" * 16, "c" * 16, "flowexec-service", 40, 100, "UNSET"),
]


def store_trace(trace_id: str = TRACE, spans: list[tuple[Any, ...]] = SPANS) -> None:
    base_ns = (int(timezone.now().timestamp() * 1e9) - 60 * 10**9) // 1000 * 1000
    write_rows([
        span_row(
            trace_id=trace_id, span_id=span_id, parent_id=parent, name=name, kind="INTERNAL",
            start_ns=base_ns + start * MS, end_ns=base_ns + (start + duration) * MS, status=status,
            status_message="boom" if status == "ERROR" else "", attributes={"flow.step.name": name},
            events=[{"name": "flow.step.output", "time_unix_nano": base_ns + start * MS, "attributes": {"n": 1}}],
            resource={"service.name": service},
        )
        for name, span_id, parent, service, start, duration, status in spans
    ])  # fmt: skip


def make_execution(trace_id: str = TRACE) -> Execution:
    return Execution.objects.create(
        flow_name="greet", flow_version=1, status=Execution.Status.SUCCEEDED, client="cli", trace_id=trace_id,
        started_at=timezone.now() - timedelta(seconds=1), finished_at=timezone.now(),
    )  # fmt: skip


def change_url(execution: Execution) -> str:
    return reverse("admin:executions_execution_change", args=[execution.pk])


@pytest.fixture
def staff_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bars(html: str) -> list[tuple[str, str, str]]:
    """(span id, left %, width %) of each drawn bar, in page order."""
    rows = re.findall(r'data-span-id="(\w+)".*?class="wf-bar" style="left: ([\d.]+)%; width: ([\d.]+)%"', html, re.S)
    return [(span_id, left, width) for span_id, left, width in rows]


def test_staff_sees_the_whole_trace_as_a_waterfall_cli_spans_included(staff_client: Client) -> None:
    store_trace()
    response = staff_client.get(change_url(make_execution()))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="trace-waterfall"' in html and "tracing/waterfall.css" in html
    assert bars(html) == [
        ("a" * 16, "0.0000", "100.0000"),
        ("b" * 16, "5.0000", "90.0000"),
        ("c" * 16, "10.0000", "75.0000"),
        ("d" * 16, "10.0000", "25.0000"),
        ("e" * 16, "60.0000", "25.0000"),
    ]
    assert "flowexec-cli" in html and "flowexec-service" in html
    assert re.search(r'class="wf-row wf-status-error" data-span-id="e{16}"', html)
    assert 'style="padding-left: 3.6em"' in html  # the steps, three levels down
    assert "flow.step.output" in html and "<th>flow.step.name</th><td>step shout</td>" in html


def test_non_staff_users_are_sent_to_the_login_page(db: None) -> None:
    store_trace()
    client = Client()
    client.force_login(get_user_model().objects.create_user("bob", password="pw-bob"))
    response = client.get(change_url(make_execution()))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert Client().get(change_url(make_execution())).status_code == 302


def test_an_execution_without_stored_spans_says_so(staff_client: Client) -> None:
    response = staff_client.get(change_url(make_execution(OTHER)))
    assert response.status_code == 200
    assert "No spans of this trace are in the embedded store" in response.content.decode()
    assert 'id="trace-waterfall"' not in response.content.decode()


def test_the_external_trace_ui_link_follows_the_url_template(staff_client: Client, settings: Any) -> None:
    settings.FLOWEXEC_TRACE_URL_TEMPLATE = "http://localhost:16686/trace/{trace_id}"
    store_trace()
    response = staff_client.get(change_url(make_execution()))
    assert f'href="http://localhost:16686/trace/{TRACE}"' in response.content.decode()


def test_span_admin_finds_spans_by_trace_id_and_shows_their_trace(staff_client: Client) -> None:
    store_trace()
    store_trace(OTHER, SPANS[:1])
    changelist = reverse("admin:tracing_span_changelist")
    html = staff_client.get(changelist, {"q": OTHER}).content.decode()
    assert "1 result" in html and "flowexec run" in html and "step hello" not in html
    span_pk = staff_client.get(changelist, {"q": TRACE}).context["cl"].result_list[0].pk
    page = staff_client.get(reverse("admin:tracing_span_change", args=[span_pk])).content.decode()
    assert len(bars(page)) == 5


def test_waterfall_is_none_for_an_unknown_trace() -> None:
    assert trace_waterfall(OTHER) is None


def test_waterfall_ticks_span_the_trace() -> None:
    store_trace()
    waterfall = trace_waterfall(TRACE.upper())
    assert waterfall is not None and waterfall.duration_ms == "400.0" and waterfall.span_count == 5
    assert [(tick.label, tick.left) for tick in waterfall.ticks][::5] == [
        ("0.000 ms", "0.0000"),
        ("400.0 ms", "100.0000"),
    ]


def open_bars(html: str) -> list[tuple[str, str, str]]:
    """(span name, left %, width %) of each bar drawn open (running), in page order."""
    rows = re.findall(
        r'class="wf-row [^"]*wf-running".*?class="wf-name">([^<]+)<.*?class="wf-bar wf-open" style="left: ([\d.]+)%;'
        r' width: ([\d.]+)%"',
        html,
        re.S,
    )
    return [(name, left, width) for name, left, width in rows]


def test_a_running_execution_draws_its_running_steps_open_at_the_right_and_refreshes(staff_client: Client) -> None:
    now = timezone.now()
    store_trace(TRACE, SPANS[:2])  # the CLI span and the server span: both stored, 60 s ago
    execution = make_execution()
    Execution.objects.filter(pk=execution.pk).update(
        status=Execution.Status.RUNNING, span_id="c" * 16, started_at=now - timedelta(seconds=2), finished_at=None
    )
    StepRun.objects.create(
        execution=execution, name="nap", type="sleep", status=StepRun.Status.RUNNING, attempts=1,
        started_at=now - timedelta(seconds=1),
    )  # fmt: skip
    html = staff_client.get(change_url(execution)).content.decode()
    assert 'data-live="1"' in html and "tracing/live.js" in html and "this view refreshes" in html
    drawn = open_bars(html)
    assert [name for name, _, _ in drawn] == ["execute_flow greet", "step nap"]
    for _, left, width in drawn:
        assert float(left) + float(width) == pytest.approx(100, abs=0.01)  # open up to now, the trace's end
    assert [span_id for span_id, _, _ in bars(html)] == ["a" * 16, "b" * 16]  # the stored ones, closed
    assert len(re.findall(r'<span class="wf-running-tag">running</span> <span class="wf-name">', html)) == 2


def test_a_finished_execution_page_refreshes_only_until_its_last_spans_can_have_arrived(staff_client: Client) -> None:
    store_trace()
    execution = make_execution()
    html = staff_client.get(change_url(execution)).content.decode()
    assert 'data-live="1"' in html and "wf-open" not in html and "Finished moments ago" in html
    Execution.objects.filter(pk=execution.pk).update(finished_at=timezone.now() - timedelta(seconds=30))
    html = staff_client.get(change_url(execution)).content.decode()
    assert 'data-live="0"' in html and "wf-open" not in html and "this view refreshes" not in html


def test_a_pending_execution_page_refreshes_until_it_starts(staff_client: Client) -> None:
    execution = Execution.objects.create(flow_name="greet", flow_version=1, trace_id=OTHER)
    html = staff_client.get(change_url(execution)).content.decode()
    assert 'data-live="1"' in html and "No spans of this trace are in the embedded store yet." in html


def test_span_admin_lists_spans_newest_first_through_an_index(staff_client: Client) -> None:
    store_trace()
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(reverse("admin:tracing_span_changelist"))
    names = [span.name for span in response.context["cl"].result_list]
    assert names == ["step shout", "step hello", "execute_flow greet", "POST api/executions/", "flowexec run"]
    if connection.vendor == "sqlite":
        (page_query,) = [q["sql"] for q in queries if q["sql"].startswith('SELECT "tracing_span"."id"')]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {page_query}")
            plan = [row[-1] for row in cursor.fetchall()]
        assert not [step for step in plan if "TEMP B-TREE" in step], plan


def test_span_admin_finds_spans_by_any_prefix_of_the_trace_id(staff_client: Client) -> None:
    store_trace()
    store_trace(OTHER, SPANS[:1])
    for term, count in {"abab": 5, "ABABABAB": 5, "cdcd": 1, "abcd": 0, "e" * 16: 1}.items():
        found = staff_client.get(reverse("admin:tracing_span_changelist"), {"q": term}).context["cl"].result_list
        assert len(found) == count, term


def test_span_admin_never_counts_the_whole_table(staff_client: Client) -> None:
    store_trace()
    with CaptureQueriesContext(connection) as queries:
        html = staff_client.get(reverse("admin:tracing_span_changelist")).content.decode()
    assert "5 spans" in html
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper() and "LIMIT" not in q["sql"].upper()]



def test_a_span_page_of_a_running_trace_draws_the_running_work_and_refreshes(staff_client: Client) -> None:
    store_trace(TRACE, SPANS[:1])
    execution = make_execution()
    Execution.objects.filter(pk=execution.pk).update(
        status=Execution.Status.RUNNING, span_id="c" * 16, started_at=timezone.now(), finished_at=None
    )
    span_pk = staff_client.get(reverse("admin:tracing_span_changelist"), {"q": TRACE}).context["cl"].result_list[0].pk
    html = staff_client.get(reverse("admin:tracing_span_change", args=[span_pk])).content.decode()
    assert 'data-live="1"' in html and "tracing/live.js" in html
    assert [name for name, _, _ in open_bars(html)] == ["execute_flow greet"]

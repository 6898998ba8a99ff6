"""GET /api/traces/{trace_id}/ (a span tree) and GET /api/traces/ (search by service, name, duration)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tracing.store.rows import span_row
from tracing.store.writer import write_rows

pytestmark = pytest.mark.django_db

TRACE = "11" * 16
OTHER = "22" * 16
MS = 1_000_000


def add_span(
    span_id: str, *, parent: str = "", trace_id: str = TRACE, name: str = "", service: str = "flowexec-service",
    start_ms: int = 0, duration_ms: int = 10, status: str = "UNSET", base: datetime | None = None,
) -> None:  # fmt: skip
    start_ns = int((base or timezone.now()).timestamp() * 1e9) // 1000 * 1000 + start_ms * MS
    write_rows([
        span_row(
            trace_id=trace_id, span_id=span_id, parent_id=parent, name=name or f"span {span_id}", kind="INTERNAL",
            start_ns=start_ns, end_ns=start_ns + duration_ms * MS, status=status, status_message="",
            attributes={"k": span_id}, events=[], resource={"service.name": service},
        )
    ])  # fmt: skip


@pytest.fixture
def cli_trace() -> datetime:
    """CLI root -> service server span -> execution -> two steps, plus a span whose parent was never stored."""
    base = timezone.now() - timedelta(minutes=5)
    add_span("a" * 16, name="flowexec run", service="flowexec-cli", duration_ms=400, base=base)
    add_span("b" * 16, parent="a" * 16, name="POST api/executions/", start_ms=20, duration_ms=350, base=base)
    add_span("c" * 16, parent="b" * 16, name="execute_flow greet", start_ms=30, duration_ms=300, base=base)
    add_span("e" * 16, parent="c" * 16, name="step shout", start_ms=200, duration_ms=100, status="ERROR", base=base)
    add_span("d" * 16, parent="c" * 16, name="step hello", start_ms=40, duration_ms=100, base=base)
    add_span("f" * 16, parent="9" * 16, name="late orphan", start_ms=390, duration_ms=5, base=base)
    return base


def test_trace_is_returned_as_a_tree_in_start_order(api_client: APIClient, cli_trace: datetime) -> None:
    response = api_client.get(f"/api/traces/{TRACE}/")
    assert response.status_code == 200
    trace = response.json()
    assert trace["trace_id"] == TRACE and trace["span_count"] == 6
    assert trace["services"] == ["flowexec-cli", "flowexec-service"]
    assert trace["duration_ms"] == pytest.approx(400, abs=0.01)
    root, orphan = trace["spans"]
    assert (root["name"], root["parent_id"], root["depth"], orphan["name"]) == ("flowexec run", None, 0, "late orphan")
    server = root["children"][0]
    execution = server["children"][0]
    assert [step["name"] for step in execution["children"]] == ["step hello", "step shout"]
    hello, shout = execution["children"]
    assert (hello["depth"], hello["parent_id"], hello["duration_ms"]) == (3, "c" * 16, 100.0)
    assert shout["status"] == "ERROR" and shout["attributes"] == {"k": "e" * 16}
    assert shout["resource"] == {"service.name": "flowexec-service"} and shout["children"] == []


def test_unknown_trace_is_404_and_malformed_id_400(api_client: APIClient) -> None:
    assert api_client.get(f"/api/traces/{OTHER}/").status_code == 404
    response = api_client.get("/api/traces/not-a-trace/")
    assert response.status_code == 400 and "trace_id" in response.json()


def test_trace_ids_are_case_insensitive(api_client: APIClient, cli_trace: datetime) -> None:
    assert api_client.get(f"/api/traces/{TRACE.upper()}/").json()["trace_id"] == TRACE


def test_traces_need_authentication(cli_trace: datetime) -> None:
    assert APIClient().get(f"/api/traces/{TRACE}/").status_code in (401, 403)
    assert APIClient().get("/api/traces/").status_code in (401, 403)


def test_search_returns_trace_summaries_most_recent_first(api_client: APIClient, cli_trace: datetime) -> None:
    add_span("1" * 16, trace_id=OTHER, name="GET healthz", duration_ms=2, base=cli_trace + timedelta(minutes=1))
    page = api_client.get("/api/traces/").json()
    assert page["count"] == 2 and [hit["trace_id"] for hit in page["results"]] == [OTHER, TRACE]
    summary = page["results"][1]
    assert summary["root_name"] == "flowexec run" and summary["root_service"] == "flowexec-cli"
    assert summary["span_count"] == 6 and summary["error_count"] == 1
    assert summary["services"] == ["flowexec-cli", "flowexec-service"]
    assert summary["duration_ms"] == pytest.approx(400, abs=0.01)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("service=flowexec-cli", [TRACE]),
        ("service=nobody", []),
        ("name=step", [TRACE]),
        ("name=HEALTHZ", [OTHER]),
        ("min_duration=350", [TRACE]),
        ("min_duration=0.5s", []),
        ("min_duration=2ms", [OTHER, TRACE]),
        ("min_duration=3000us&service=flowexec-service", [TRACE]),
    ],
)
def test_search_filters(api_client: APIClient, cli_trace: datetime, query: str, expected: list[str]) -> None:
    add_span("1" * 16, trace_id=OTHER, name="GET healthz", duration_ms=2, base=cli_trace + timedelta(minutes=1))
    response = api_client.get(f"/api/traces/?{query}")
    assert response.status_code == 200
    assert [hit["trace_id"] for hit in response.json()["results"]] == expected


def test_search_rejects_a_bad_duration(api_client: APIClient) -> None:
    response: Any = api_client.get("/api/traces/?min_duration=fast")
    assert response.status_code == 400 and "min_duration" in response.json()

"""Span store reads whose cost follows the page, not the table: trace search and the open-span merge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tracing.store import selectors
from tracing.store.rows import span_row
from tracing.store.selectors import OpenSpan, trace_get, trace_search
from tracing.store.writer import write_rows

pytestmark = pytest.mark.django_db
MS = 1_000_000


def store(trace_id: str, count: int, minutes_ago: int, service: str = "flowexec-service") -> None:
    base = int((timezone.now() - timedelta(minutes=minutes_ago)).timestamp() * 1e6) * 1000
    write_rows([
        span_row(
            trace_id=trace_id, span_id=f"{index + 1:016x}", parent_id="", name=f"span {index}", kind="INTERNAL",
            start_ns=base + index * MS, end_ns=base + (index + 1) * MS, status="UNSET", status_message="",
            attributes={}, events=[], resource={"service.name": service},
        )
        for index in range(count)
    ])  # fmt: skip


@pytest.fixture
def three_traces() -> list[str]:
    """Newest first: each trace has several spans, so a batch of rows holds fewer traces than rows."""
    traces = ["a1" * 16, "b2" * 16, "c3" * 16]
    for minutes_ago, trace_id in zip([1, 2, 3], traces, strict=True):
        store(trace_id, 3, minutes_ago)
    return traces


def test_search_pages_through_traces_newest_first_across_batches(three_traces: list[str], monkeypatch: Any) -> None:
    monkeypatch.setattr(selectors, "SEARCH_BATCH", 2)
    search = trace_search()
    assert [hit["trace_id"] for hit in search[0:2]] == three_traces[:2]
    assert [hit["trace_id"] for hit in search[2:4]] == three_traces[2:]
    assert search.count() == 3 and search[5:6] == []


def test_search_count_stops_at_its_limit(three_traces: list[str], monkeypatch: Any) -> None:
    monkeypatch.setattr(selectors, "SEARCH_COUNT_LIMIT", 2)
    assert trace_search().count() == 3
    assert trace_search(service="nobody").count() == 0


def test_search_api_reads_a_bounded_number_of_rows(api_client: APIClient, three_traces: list[str]) -> None:
    with CaptureQueriesContext(connection) as queries:
        page = api_client.get("/api/traces/").json()
    assert [hit["trace_id"] for hit in page["results"]] == three_traces and page["count"] == 3
    span_reads = [q["sql"].upper() for q in queries if "TRACING_SPAN" in q["sql"].upper()]
    assert span_reads and not [sql for sql in span_reads if "GROUP BY" in sql]
    assert all("LIMIT" in sql or " IN (" in sql for sql in span_reads), span_reads


def test_open_spans_join_the_stored_tree_and_a_stored_span_wins() -> None:
    store("d4" * 16, 1, 1)
    now = timezone.now()
    trace = trace_get("d4" * 16, open_spans=[
        OpenSpan(span_id="0" * 15 + "1", parent_id="", name="stored already", start_time=now),
        OpenSpan(span_id="9" * 16, parent_id="0" * 15 + "1", name="step nap", start_time=now - timedelta(seconds=1)),
    ])  # fmt: skip
    assert trace is not None and trace.running and trace.span_count == 2
    (root,) = trace.roots
    assert root.span.name == "span 0" and [child.span.name for child in root.children] == ["step nap"]
    nap = root.children[0].span
    assert selectors.is_running(nap) and nap.service_name == "flowexec-service"  # inherited from its parent
    assert trace.end_time >= now and not selectors.is_running(root.span)


def test_a_trace_with_only_open_spans_is_drawn_and_none_without_any() -> None:
    now = timezone.now()
    trace = trace_get("e5" * 16, open_spans=[OpenSpan(span_id="1" * 16, parent_id="", name="x", start_time=now)])
    assert trace is not None and trace.running and trace.roots[0].span.name == "x"
    assert trace_get("e5" * 16) is None

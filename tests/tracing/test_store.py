"""The store exporter and writer: SDK spans become rows in batches, idempotently; retention bounds the table."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import timezone as zones
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_trace_id

from tracing.models import Span
from tracing.store import retention, writer
from tracing.store.exporter import StoreSpanExporter
from tracing.store.rows import SpanRow, span_row
from tracing.store.writer import SpanWriter, write_rows

pytestmark = pytest.mark.django_db(transaction=True)

SECOND_NS = 1_000_000_000


def make_row(span_id: str, *, start: Any = None, trace_id: str = "ab" * 16, duration_ns: int = 1000) -> SpanRow:
    start_ns = int((start or timezone.now()).timestamp() * SECOND_NS)
    return span_row(
        trace_id=trace_id, span_id=span_id, parent_id="", name=f"span {span_id}", kind="INTERNAL",
        start_ns=start_ns, end_ns=start_ns + duration_ns, status="UNSET", status_message="",
        attributes={}, events=[], resource={"service.name": "test"},
    )  # fmt: skip


def received_when_started() -> None:
    """Retention counts from arrival: pretend each stored span arrived when it started."""
    Span.objects.update(received_at=F("start_time"))


def finished_spans() -> list[ReadableSpan]:
    """A server span with an internal child that failed, recorded in memory by a local provider."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "store-test", "deployment": "ci"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    server = tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER, attributes={"http.status_code": 200})
    step = tracer.start_as_current_span("step boom", attributes={"flow.step.attempt": 2, "tags": ("a", "b")})
    with server, step as child:
        child.add_event("flow.step.input", {"content": '{"x": 1}'})
        child.set_status(Status(StatusCode.ERROR, "boom"))
    return list(memory.get_finished_spans())


def test_batch_processor_stores_spans_with_tree_attributes_events_and_resource() -> None:
    spans = finished_spans()
    provider = TracerProvider()
    processor = BatchSpanProcessor(StoreSpanExporter())
    provider.add_span_processor(processor)
    for span in spans:
        processor.on_end(span)
    assert processor.force_flush(10_000)
    processor.shutdown()

    server, child = spans[1], spans[0]
    trace_id = format_trace_id(server.context.trace_id)
    rows = {row.name: row for row in Span.objects.filter(trace_id=trace_id)}
    assert set(rows) == {"GET /x", "step boom"}
    root, step = rows["GET /x"], rows["step boom"]
    assert root.kind == "SERVER" and root.parent_id == "" and root.span_id == f"{server.context.span_id:016x}"
    assert step.parent_id == root.span_id and step.kind == "INTERNAL"
    assert step.status == "ERROR" and step.status_message == "boom"
    assert step.attributes == {"flow.step.attempt": 2, "tags": ["a", "b"]}
    assert step.events == [
        {"name": "flow.step.input", "time_unix_nano": child.events[0].timestamp, "attributes": {"content": '{"x": 1}'}}
    ]
    assert step.service_name == "store-test" and step.resource["deployment"] == "ci"
    assert step.duration_ns == child.end_time - child.start_time
    assert root.start_time <= step.start_time and step.end_time <= root.end_time


def test_exporting_the_same_spans_twice_stores_each_once() -> None:
    spans = finished_spans()
    exporter = StoreSpanExporter()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert Span.objects.count() == 2


def test_export_reports_failure_instead_of_raising_when_the_database_refuses(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("disk full")

    monkeypatch.setattr(writer, "insert_rows", refuse)
    assert StoreSpanExporter().export(finished_spans()) is SpanExportResult.FAILURE
    assert "could not store spans" in caplog.text


def in_thread(work: Callable[[], Any]) -> Any:
    """Run work on a new thread (a connection of its own, as the processor's worker has) and return its result."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and "value" in result
    return result["value"]


def test_a_full_batch_keeps_the_exporting_threads_connection_and_a_partial_one_closes_it() -> None:
    spans = finished_spans()
    exporter = StoreSpanExporter(full_batch=len(spans))

    def export_full_then_partial() -> tuple[bool, bool]:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        kept = connection.connection is not None
        assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
        return kept, connection.connection is None

    assert in_thread(export_full_then_partial) == (True, True)
    assert Span.objects.count() == 2


def test_an_export_on_a_thread_with_its_own_open_connection_leaves_it_open() -> None:
    Span.objects.exists()  # this thread's connection, opened by its own work (a request's, say)
    opened = connection.connection
    assert StoreSpanExporter().export(finished_spans()) is SpanExportResult.SUCCESS
    assert connection.connection is opened


def test_a_kept_connection_that_went_stale_is_replaced_and_the_batch_stored() -> None:
    spans = finished_spans()
    exporter = StoreSpanExporter(full_batch=1)

    def export_after_the_server_dropped_it() -> SpanExportResult:
        assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
        connection.connection.close()  # what a database restart does to an idle connection
        return exporter.export(spans[1:])

    assert in_thread(export_after_the_server_dropped_it) is SpanExportResult.SUCCESS
    assert Span.objects.count() == 2


def test_writer_writes_queued_rows_in_the_background_and_refuses_what_does_not_fit() -> None:
    writer = SpanWriter(max_queued=3, batch_size=2)
    assert writer.submit([make_row(f"{n:016x}") for n in range(1, 4)])
    assert writer.flush(10)
    assert Span.objects.count() == 3
    assert not SpanWriter(max_queued=3).submit([make_row(f"{n:016x}") for n in range(10, 14)])
    assert Span.objects.count() == 3


def test_prune_removes_spans_older_than_the_age_limit_and_keeps_recent_ones() -> None:
    now = timezone.now()
    write_rows([make_row("0000000000000001", start=now - timedelta(days=10)), make_row("0000000000000002", start=now)])
    received_when_started()
    assert retention.prune_spans(max_age_days=7, max_rows=None) == 1
    assert list(Span.objects.values_list("span_id", flat=True)) == ["0000000000000002"]


def test_prune_keeps_only_the_newest_rows_beyond_the_row_limit() -> None:
    now = timezone.now()
    write_rows([make_row(f"{n:016x}", start=now - timedelta(minutes=n)) for n in range(1, 6)])
    received_when_started()
    assert retention.prune_spans(max_age_days=None, max_rows=2) == 3
    assert sorted(Span.objects.values_list("span_id", flat=True)) == [f"{1:016x}", f"{2:016x}"]


def test_prunespans_command_applies_the_settings(settings: Any) -> None:
    settings.FLOWEXEC_SPAN_RETENTION_DAYS = 1
    settings.FLOWEXEC_SPAN_RETENTION_MAX_ROWS = 0
    now = timezone.now()
    write_rows([make_row("0000000000000001", start=now - timedelta(days=2)), make_row("0000000000000002", start=now)])
    received_when_started()
    out = StringIO()
    call_command("prunespans", stdout=out)
    assert out.getvalue().strip() == "Deleted 1 spans."
    assert Span.objects.count() == 1


def test_writes_prune_opportunistically_at_most_once_per_interval(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.FLOWEXEC_SPAN_RETENTION_MAX_ROWS = 2
    monkeypatch.setattr(retention, "_next_prune_at", 0.0)
    now = timezone.now()
    write_rows([make_row(f"{n:016x}", start=now - timedelta(minutes=n)) for n in range(1, 4)])
    assert Span.objects.count() == 2
    write_rows([make_row(f"{n:016x}", start=now) for n in range(10, 12)])
    assert Span.objects.count() == 4


def test_the_store_insert_writes_what_the_model_would_and_ignores_a_redelivered_span() -> None:
    start = timezone.now() - timedelta(seconds=5)
    row = make_row("00000000000000aa", start=start, duration_ns=1_500_000)
    row.update(
        status="ERROR", status_message="boom \u00e9", attributes={"k": [1, 2.5, "x"], "n\u00e9": True},
        events=[{"name": "e", "time_unix_nano": 1, "attributes": {"a": "b"}}],
    )  # fmt: skip
    through_model = Span.objects.create(**{**row, "span_id": "00000000000000bb"})
    write_rows([row])
    write_rows([{**row, "name": "re-delivered"}])
    stored = Span.objects.get(span_id="00000000000000aa")
    columns = [f.attname for f in Span._meta.concrete_fields if f.attname not in ("id", "span_id", "received_at")]
    got = {name: getattr(stored, name) for name in columns}
    expected = {name: getattr(through_model, name) for name in columns}
    # The size is approximate by design (JSON separators differ); everything else is the same value.
    assert abs(got.pop("size_bytes") - expected.pop("size_bytes")) < 40
    assert got == expected
    assert stored.name == "span 00000000000000aa" and Span.objects.count() == 2
    assert stored.received_at >= through_model.received_at


def test_the_store_adapts_datetimes_as_the_backend_does_whole_seconds_and_other_zones_included() -> None:
    adapt = writer._datetime_adapter(connection)
    values = [
        datetime(2026, 12, 1, 15, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 15, 0, 0, 7, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 12, 1, 17, 0, 0, 5, tzinfo=zones(timedelta(hours=2))),
        timezone.now(),
    ]
    assert [adapt(value) for value in values] == [connection.ops.adapt_datetimefield_value(v) for v in values]
    whole_second = make_row("00000000000000cc", start=datetime(2026, 12, 1, 15, 0, 0, tzinfo=UTC))
    write_rows([whole_second])
    stored = Span.objects.get(span_id="00000000000000cc")
    assert (stored.start_time, stored.end_time) == (whole_second["start_time"], whole_second["end_time"])
    assert Span.objects.filter(start_time__lte=datetime(2026, 12, 1, 15, 0, 0, tzinfo=UTC)).count() == 1

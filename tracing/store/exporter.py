"""The `store` span exporter: SDK spans to rows, written on the BatchSpanProcessor's thread."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from tracing.store.rows import SpanRow, event_entry, json_attributes, span_row
from tracing.store.writer import write_rows_in_thread


def row_from_readable(span: ReadableSpan) -> SpanRow:
    """Convert one finished SDK span into a store row."""
    context = span.get_span_context()
    return span_row(
        trace_id=format_trace_id(context.trace_id),
        span_id=format_span_id(context.span_id),
        parent_id=format_span_id(span.parent.span_id) if span.parent else "",
        name=span.name,
        kind=span.kind.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status=span.status.status_code.name,
        status_message=span.status.description or "",
        attributes=json_attributes(span.attributes),
        events=[event_entry(event.name, event.timestamp, event.attributes) for event in span.events],
        resource=json_attributes(span.resource.attributes),
    )


class StoreSpanExporter(SpanExporter):
    """Write spans into the embedded store; meant to run under a BatchSpanProcessor."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Store one batch; never raises, FAILURE if the database refused it."""
        if not spans:
            return SpanExportResult.SUCCESS
        stored = write_rows_in_thread(row_from_readable(span) for span in spans)
        return SpanExportResult.SUCCESS if stored else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Nothing to release: each export closes its own connection."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Exports are synchronous, so there is nothing pending."""
        return True

"""TraceIdsFilter puts the current trace and span ids on log records."""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tracing.logs import TraceIdsFilter


def filtered_record() -> logging.LogRecord:
    """A record after passing through the filter (which must let it through)."""
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "message", None, None)
    assert TraceIdsFilter().filter(record) is True
    return record


def test_record_inside_a_span_carries_its_ids():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        record = filtered_record()
    span_context = span.get_span_context()
    assert record.otelTraceID == f"{span_context.trace_id:032x}"
    assert record.otelSpanID == f"{span_context.span_id:016x}"


def test_record_outside_a_span_gets_zeroes():
    record = filtered_record()
    assert (record.otelTraceID, record.otelSpanID) == ("0", "0")


def test_formatter_from_settings_renders_the_ids():
    tracer = TracerProvider().get_tracer("test")
    formatter = logging.Formatter("[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s")
    with tracer.start_as_current_span("work") as span:
        line = formatter.format(filtered_record())
    assert (
        line == f"[trace_id={trace.format_trace_id(span.get_span_context().trace_id)} "
        f"span_id={trace.format_span_id(span.get_span_context().span_id)}] message"
    )

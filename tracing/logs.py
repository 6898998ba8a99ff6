"""Logging filter adding the current trace and span ids to every record (otelTraceID / otelSpanID)."""

from __future__ import annotations

import logging

from opentelemetry import trace


class TraceIdsFilter(logging.Filter):
    """Set record.otelTraceID / record.otelSpanID from the current span ("0" outside one); never drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record and let it through."""
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            # django.request logs 4xx/5xx after the server span has ended; the middleware kept its context.
            span_context = getattr(getattr(record, "request", None), "span_context", trace.INVALID_SPAN_CONTEXT)
        if span_context.is_valid:
            record.otelTraceID = trace.format_trace_id(span_context.trace_id)
            record.otelSpanID = trace.format_span_id(span_context.span_id)
        else:
            record.otelTraceID = "0"
            record.otelSpanID = "0"
        return True

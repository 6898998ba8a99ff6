"""{% execution_logs execution %}: the log lines of an execution's trace, beside its waterfall."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from tracing.log_store import log_lines

register = template.Library()


@register.inclusion_tag("tracing/log_lines.html")
def execution_logs(execution: Any) -> dict[str, Any]:
    """The stored log lines of the execution's trace in time order, each linked to its span."""
    trace_id = getattr(execution, "trace_id", "") or ""
    spans = reverse("admin:tracing_span_changelist")
    lines = [
        (line, f"{spans}?{urlencode({'trace_id': line.trace_id, 'span_id': line.span_id})}")
        for line in (log_lines(trace_id) if trace_id else [])
    ]
    return {"lines": lines, "trace_id": trace_id}

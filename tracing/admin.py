"""Admin for stored spans: read-only, searchable by trace id, with the trace's waterfall on each span."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from tracing import conf
from tracing.models import Span
from tracing.waterfall import trace_waterfall


@admin.register(Span)
class SpanAdmin(admin.ModelAdmin):
    """Spans are written by exporters and the receiver, never by hand."""

    list_display = ["name", "service_name", "kind", "status", "start_time", "duration", "trace"]
    list_filter = ["service_name", "kind", "status"]
    search_fields = ["=trace_id", "=span_id", "name"]
    date_hierarchy = "start_time"
    readonly_fields = [
        "trace_id", "span_id", "parent_id", "name", "kind", "service_name", "start_time", "end_time",
        "duration_ns", "status", "status_message", "attributes", "events", "resource",
    ]  # fmt: skip
    show_full_result_count = False  # the table can hold many rows: skip the extra COUNT(*)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration", ordering="duration_ns")
    def duration(self, span: Span) -> str:
        return f"{span.duration_ms:.3f} ms"

    @admin.display(description="trace id", ordering="trace_id")
    def trace(self, span: Span) -> str:
        url = reverse("admin:tracing_span_changelist")
        return format_html('<a href="{}?q={}">{}</a>', url, span.trace_id, span.trace_id)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        span = self.get_object(request, object_id)
        template = conf.get("FLOWEXEC_TRACE_URL_TEMPLATE")
        context = {
            **(extra_context or {}),
            "waterfall": trace_waterfall(span.trace_id) if span is not None else None,
            "trace_url": template.format(trace_id=span.trace_id) if template and span is not None else "",
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

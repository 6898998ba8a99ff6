"""Admin for stored spans: read-only, newest first, searchable by trace id prefix, with the trace's waterfall."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from tracing import conf
from tracing.models import Span
from tracing.paging import EstimatedCountPaginator
from tracing.store import selectors
from tracing.waterfall import format_timestamp, trace_waterfall


class ServiceFilter(admin.SimpleListFilter):
    """Filter by service; the choices come from the newest spans, not a DISTINCT over the whole table."""

    title = "service"
    parameter_name = "service_name"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name or "(none)") for name in selectors.recent_services()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Span]) -> QuerySet[Span]:
        return queryset.filter(service_name=self.value()) if self.value() is not None else queryset


@admin.register(Span)
class SpanAdmin(admin.ModelAdmin):
    """Spans are written by exporters and the receiver, never by hand."""

    list_display = ["name", "service_name", "kind", "status", "start", "duration", "trace"]
    list_filter = [ServiceFilter, "kind", "status", "start_time"]
    # The search itself is selectors.span_search; these name what it looks at, and turn the box on.
    search_fields = ["trace_id", "span_id", "name"]
    search_help_text = "Any prefix of a trace id, a span id, or part of a span name."
    ordering = ["-start_time"]
    readonly_fields = [
        "trace_id", "span_id", "parent_id", "name", "kind", "service_name", "start_time", "end_time",
        "duration_ns", "status", "status_message", "attributes", "events", "resource",
    ]  # fmt: skip
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # the table can hold many rows: skip the extra COUNT(*)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="start", ordering="start_time")
    def start(self, span: Span) -> str:
        return format_timestamp(span.start_time)

    @admin.display(description="duration", ordering="duration_ns")
    def duration(self, span: Span) -> str:
        return f"{span.duration_ms:.3f} ms"

    @admin.display(description="trace id", ordering="trace_id")
    def trace(self, span: Span) -> str:
        url = reverse("admin:tracing_span_changelist")
        return format_html('<a href="{}?q={}">{}</a>', url, span.trace_id, span.trace_id)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Span], search_term: str
    ) -> tuple[QuerySet[Span], bool]:
        return selectors.span_search(queryset, search_term), False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        span = self.get_object(request, object_id)
        template = conf.get("FLOWEXEC_TRACE_URL_TEMPLATE")
        waterfall = trace_waterfall(span.trace_id) if span is not None else None
        context = {
            **(extra_context or {}),
            "waterfall": waterfall,
            "live": waterfall is not None and waterfall.running,
            "trace_url": template.format(trace_id=span.trace_id) if template and span is not None else "",
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

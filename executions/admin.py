"""Admin for flows and executions: read-only where editing would falsify history."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from executions import pages, services
from executions.models import Execution, Flow
from tracing import conf as tracing_conf
from tracing.paging import EstimatedCountPaginator
from tracing.waterfall import format_timestamp, trace_waterfall


class ReadOnlyAdminMixin:
    """History is written by services, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Flow)
class FlowAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "version", "description", "created_at"]
    list_filter = ["name"]
    search_fields = ["name", "description"]
    readonly_fields = ["name", "version", "description", "definition", "created_at"]


class FlowNameFilter(admin.SimpleListFilter):
    """Filter by flow; the choices come from the (small) flow table, not a DISTINCT over every execution."""

    title = "flow"
    parameter_name = "flow_name"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in pages.flow_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        return queryset.filter(flow_name=self.value()) if self.value() else queryset


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "flow_name", "flow_version", "status", "client", "duration", "request_id", "trace_id",
                    "created"]
    list_filter = ["status", "client", FlowNameFilter, "created_at"]
    # The search itself is pages.execution_search; these name what it looks at, and turn the box on.
    search_fields = ["id", "trace_id", "request_id", "flow_name"]
    search_help_text = "Any prefix of an execution, trace or request id, or a flow name."
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # no second COUNT(*) of the whole table on every page
    fields = [
        "id", "flow", "flow_name", "flow_version", "status", "parent_link", "children_links", "inputs", "outputs",
        "error", "client", "request_id", "user_agent", "trace_id", "span_id", "created_by", "runner",
        "created", "started", "finished", "heartbeat", "duration",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["cancel_selected"]

    @admin.display(description="duration")
    def duration(self, execution: Execution) -> str:
        return pages.format_duration(execution.duration)

    @admin.display(description="created", ordering="created_at")
    def created(self, execution: Execution) -> str:
        return format_timestamp(execution.created_at)

    @admin.display(description="started")
    def started(self, execution: Execution) -> str:
        return format_timestamp(execution.started_at)

    @admin.display(description="finished")
    def finished(self, execution: Execution) -> str:
        return format_timestamp(execution.finished_at)

    @admin.display(description="last heartbeat")
    def heartbeat(self, execution: Execution) -> str:
        return format_timestamp(execution.heartbeat_at)

    @admin.display(description="parent execution")
    def parent_link(self, execution: Execution) -> str:
        if execution.parent_id is None:
            return "-"
        url = reverse("admin:executions_execution_change", args=[execution.parent_id])
        return format_html('<a href="{}">{}</a>', url, execution.parent_id)

    @admin.display(description="child executions")
    def children_links(self, execution: Execution) -> str:
        children = pages.execution_children(execution)
        if not children:
            return "-"
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a> {} ({})',
            (
                (reverse("admin:executions_execution_change", args=[child.pk]), child.pk, child.flow_name, child.status)
                for child in children
            ),
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Execution], search_term: str
    ) -> tuple[QuerySet[Execution], bool]:
        return pages.execution_search(queryset, search_term), False

    @admin.action(description="Cancel selected pending or running executions")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        cancelled = [services.execution_cancel(execution=execution) for execution in queryset]
        done = sum(execution.status == Execution.Status.CANCELLED for execution in cancelled)
        self.message_user(request, f"{done} execution(s) cancelled.", messages.SUCCESS)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        execution = self.get_object(request, object_id)
        trace_id = execution.trace_id if execution is not None else ""
        template = tracing_conf.get("FLOWEXEC_TRACE_URL_TEMPLATE")
        context = {
            **(extra_context or {}),
            "steps": pages.execution_steps(execution) if execution is not None else [],
            "waterfall": trace_waterfall(trace_id) if trace_id else None,
            "live": execution is not None and pages.execution_is_live(execution),
            "trace_url": template.format(trace_id=trace_id) if template and trace_id else "",
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

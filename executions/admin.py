"""Admin for flows and executions: read-only where editing would falsify history."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from executions import services
from executions.models import Execution, Flow, StepRun
from tracing import conf as tracing_conf
from tracing.waterfall import trace_waterfall


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


class StepRunInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = ["name", "type", "status", "attempts", "started_at", "finished_at", "duration", "span_id", "error"]
    readonly_fields = fields


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "flow_name", "flow_version", "status", "client", "duration", "request_id", "trace_id",
                    "created_at"]
    list_filter = ["status", "client", "flow_name", "created_at"]
    search_fields = ["=id", "=request_id", "=trace_id", "flow_name"]
    date_hierarchy = "created_at"
    list_select_related = ["flow"]
    readonly_fields = [
        "id", "flow", "flow_name", "flow_version", "parent", "status", "inputs", "outputs", "error", "client",
        "request_id", "user_agent", "trace_id", "span_id", "created_by", "runner", "heartbeat_at",
        "created_at", "started_at", "finished_at", "duration",
    ]
    inlines = [StepRunInline]
    actions = ["cancel_selected"]

    @admin.display(description="duration")
    def duration(self, execution: Execution) -> str:
        return str(execution.duration) if execution.duration is not None else "-"

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
            "waterfall": trace_waterfall(trace_id) if trace_id else None,
            "trace_url": template.format(trace_id=trace_id) if template and trace_id else "",
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

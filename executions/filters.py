"""Query-string filters for the executions list; each one is served by an index with the default ordering."""

from __future__ import annotations

import django_filters

from executions.models import Execution


class ExecutionFilter(django_filters.FilterSet):
    """?flow=&status=&request_id=&trace_id=&client=&since="""

    flow = django_filters.CharFilter(field_name="flow_name", max_length=100, help_text="flow name")
    request_id = django_filters.CharFilter(max_length=128, help_text="the X-Request-ID the execution was created with")
    trace_id = django_filters.CharFilter(max_length=32, help_text="32 hex digits")
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="created at or after this ISO 8601 time"
    )

    class Meta:
        model = Execution
        fields = ["flow", "status", "request_id", "trace_id", "client", "since"]

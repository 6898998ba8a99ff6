"""Query-string filters for the executions list."""

from __future__ import annotations

import django_filters

from executions.models import Execution


class ExecutionFilter(django_filters.FilterSet):
    """?flow=&status=&request_id=&trace_id=&client="""

    flow = django_filters.CharFilter(field_name="flow_name")

    class Meta:
        model = Execution
        fields = ["flow", "status", "request_id", "trace_id", "client"]

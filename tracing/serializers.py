"""Shapes of the trace API: search parameters in, traces and span trees out."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tracing.models import Span
from tracing.store.selectors import SpanNode

DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)?\s*")
NS_PER_UNIT = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@extend_schema_field(OpenApiTypes.STR)
class DurationNsField(serializers.Field):
    """A duration such as `250` (milliseconds), `250ms`, `1.5s` or `800us`, as nanoseconds."""

    default_error_messages = {"invalid": 'expected a duration such as "250ms" or "1.5s", got "{value}"'}

    def to_internal_value(self, data: Any) -> int:
        match = DURATION.fullmatch(str(data))
        if match is None:
            self.fail("invalid", value=str(data)[:40])
        number, unit = match.groups()
        return int(float(number) * NS_PER_UNIT[unit or "ms"])

    def to_representation(self, value: int) -> str:
        return f"{value}ns"


class TraceSearchInput(serializers.Serializer):
    """Query of GET /api/traces/: a trace matches when one of its spans matches every filter given."""

    service = serializers.CharField(required=False, allow_blank=True, max_length=255)
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    min_duration = DurationNsField(source="min_duration_ns", required=False)


class TraceSummaryOutput(serializers.Serializer):
    """One trace in a search result."""

    trace_id = serializers.CharField()
    root_name = serializers.CharField()
    root_service = serializers.CharField()
    start_time = serializers.DateTimeField()
    duration_ms = serializers.FloatField()
    span_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    services = serializers.ListField(child=serializers.CharField())


class SpanOutput(serializers.ModelSerializer):
    """One stored span; parent_id is null for a span without a parent."""

    parent_id = serializers.CharField(allow_null=True)
    duration_ms = serializers.FloatField()

    class Meta:
        model = Span
        fields = [
            "trace_id",
            "span_id",
            "parent_id",
            "name",
            "kind",
            "service_name",
            "start_time",
            "end_time",
            "duration_ms",
            "status",
            "status_message",
            "attributes",
            "events",
            "resource",
        ]

    def to_representation(self, instance: Span) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["parent_id"] = data["parent_id"] or None
        return data


class SpanNodeOutput(SpanOutput):
    """A span with its depth and nested children; the declared fields describe it in the schema."""

    depth = serializers.IntegerField()
    children = serializers.ListField(child=serializers.DictField(), help_text="span nodes of the same shape")

    class Meta(SpanOutput.Meta):
        fields = [*SpanOutput.Meta.fields, "depth", "children"]

    def to_representation(self, instance: SpanNode) -> dict[str, Any]:
        return {
            **SpanOutput(instance.span).data,
            "depth": instance.depth,
            "children": [self.to_representation(child) for child in instance.children],
        }


class TraceOutput(serializers.Serializer):
    """GET /api/traces/{trace_id}/: the trace's totals and its span tree."""

    trace_id = serializers.CharField()
    span_count = serializers.IntegerField()
    services = serializers.ListField(child=serializers.CharField())
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    duration_ms = serializers.FloatField()
    spans = SpanNodeOutput(source="roots", many=True)

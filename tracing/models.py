"""The embedded span store: one row per span, from this process's exporter or the OTLP receiver."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

# What a row costs beyond its JSON columns (ids, names, times, index entries), in bytes.
ROW_OVERHEAD_BYTES = 200


def encoded_size(*, name: str, status_message: str, service_name: str, json_length: int) -> int:
    """A span row's approximate stored size in bytes: its texts, its JSON columns' length and a fixed overhead."""
    text = name + status_message + service_name
    return ROW_OVERHEAD_BYTES + len(text.encode("utf-8", "replace")) + json_length


class EncodedSizeField(models.PositiveIntegerField):
    """The span's approximate stored size, computed on insert (bulk_create too) so retention can bound bytes."""

    def pre_save(self, model_instance: Any, add: bool) -> int:
        if add:
            payload = [model_instance.attributes, model_instance.events, model_instance.resource]
            size = encoded_size(
                name=model_instance.name,
                status_message=model_instance.status_message,
                service_name=model_instance.service_name,
                json_length=len(json.dumps(payload, separators=(",", ":"), default=str)),
            )
            setattr(model_instance, self.attname, size)
        return getattr(model_instance, self.attname)


class Span(models.Model):
    """A finished span; (trace_id, span_id) is unique so re-delivered spans are ignored."""

    class Kind(models.TextChoices):
        INTERNAL = "INTERNAL"
        SERVER = "SERVER"
        CLIENT = "CLIENT"
        PRODUCER = "PRODUCER"
        CONSUMER = "CONSUMER"

    class Status(models.TextChoices):
        UNSET = "UNSET"
        OK = "OK"
        ERROR = "ERROR"

    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_id = models.CharField(max_length=16, blank=True, default="")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.INTERNAL)
    service_name = models.CharField(max_length=255, blank=True, default="")
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    # Nanoseconds, as OTLP sends them: the datetimes above stop at microseconds.
    duration_ns = models.BigIntegerField()
    status = models.CharField(max_length=5, choices=Status.choices, default=Status.UNSET)
    status_message = models.TextField(blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True)
    resource = models.JSONField(default=dict, blank=True)
    # When the store took the span: retention ages count from here, so a forged start_time cannot evict real spans.
    received_at = models.DateTimeField(default=timezone.now)
    size_bytes = EncodedSizeField(default=0)
    # Who sent it through the OTLP receiver; null for spans of this service's own exporter.
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["start_time"]
        permissions = [("ingest_spans", "Can send spans to the OTLP receiver")]
        constraints = [
            # Also the index behind lookups by trace: trace_id is its leading column.
            models.UniqueConstraint(fields=["trace_id", "span_id"], name="tracing_span_trace_span_uniq"),
        ]
        indexes = [
            models.Index(fields=["start_time"], name="tracing_span_start_idx"),
            models.Index(fields=["service_name", "start_time"], name="tracing_span_service_start_idx"),
            models.Index(fields=["received_at", "id"], name="tracing_span_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.service_name}, {self.span_id})"

    @property
    def duration_ms(self) -> float:
        """Duration in milliseconds."""
        return self.duration_ns / 1_000_000


class LogLine(models.Model):
    """A log record this service emitted inside a trace, kept for the execution page (tracing/log_store.py)."""

    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    time = models.DateTimeField()
    level = models.CharField(max_length=8)
    logger = models.CharField(max_length=255)
    message = models.TextField()

    class Meta:
        ordering = ["time", "id"]
        indexes = [
            models.Index(fields=["trace_id", "time"], name="tracing_logline_trace_idx"),
            models.Index(fields=["time"], name="tracing_logline_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.logger}: {self.message[:60]}"

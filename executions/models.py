"""Flows (versioned definitions), their executions, and each execution's step runs."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models


class Flow(models.Model):
    """One version of a flow definition; a change to the definition makes a new row."""

    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    definition = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="flow_name_version_unique")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class FlowName(models.Model):
    """The highest version ever stored under a name, so a deleted version's number is never reused."""

    name = models.SlugField(max_length=100, unique=True)
    last_version = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} (v{self.last_version})"


class Execution(models.Model):
    """One run of one flow version; it exists before any step runs and always ends finished."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Client(models.TextChoices):
        API = "api"
        CLI = "cli"
        MANAGE = "manage"

    FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # SET_NULL keeps history when a flow is deleted; name and version are kept on the row.
    flow = models.ForeignKey(Flow, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions")
    # No single-column indexes on flow_name and created_by: execution_flow_idx and
    # execution_created_by_idx start with them, and every index is written on each execution's INSERT.
    flow_name = models.SlugField(max_length=100, db_index=False)
    flow_version = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Secret inputs show as "[REDACTED]" here; their values sit encrypted in secret_inputs
    # (executions.vault) while the execution is unfinished, and are erased when it finishes.
    inputs = models.JSONField(default=dict, blank=True)
    secret_inputs = models.TextField(blank=True, editable=False)
    outputs = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    client = models.CharField(max_length=16, choices=Client.choices, default=Client.API)
    request_id = models.CharField(max_length=128, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # Which process runs it and when that process last reported, so a crashed runner is detectable.
    runner = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("cancel_execution", "Can cancel any execution")]
        # The API lists newest first (created_at, id) with cursor pages: one index per filter serves it.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="execution_created_idx"),
            models.Index(fields=["flow_name", "-created_at", "-id"], name="execution_flow_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="execution_status_idx"),
            models.Index(fields=["request_id", "-created_at", "-id"], name="execution_request_id_idx"),
            models.Index(fields=["trace_id", "-created_at", "-id"], name="execution_trace_id_idx"),
            models.Index(fields=["client", "-created_at", "-id"], name="execution_client_idx"),
            models.Index(fields=["created_by", "-created_at", "-id"], name="execution_created_by_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.flow_name} v{self.flow_version} {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class StepRun(models.Model):
    """One step of one execution: its status, output or error, attempts and timings."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    # No index of its own: the (execution, name) unique constraint's index starts with it.
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="step_runs", db_index=False)
    name = models.CharField(max_length=64)
    type = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    span_id = models.CharField(max_length=16, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        constraints = [models.UniqueConstraint(fields=["execution", "name"], name="steprun_execution_name_unique")]

    def __str__(self) -> str:
        return self.name

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

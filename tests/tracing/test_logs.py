"""TraceIdsFilter puts the current trace and span ids on log records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tests.live import require_service, wait_until
from tests.otlp_receiver import OtlpReceiver
from tests.scale import test_celery as scale
from tracing.logs import TraceIdsFilter


def filtered_record() -> logging.LogRecord:
    """A record after passing through the filter (which must let it through)."""
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "message", None, None)
    assert TraceIdsFilter().filter(record) is True
    return record


def test_record_inside_a_span_carries_its_ids():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        record = filtered_record()
    span_context = span.get_span_context()
    assert record.otelTraceID == f"{span_context.trace_id:032x}"
    assert record.otelSpanID == f"{span_context.span_id:016x}"


def test_record_outside_a_span_gets_zeroes():
    record = filtered_record()
    assert (record.otelTraceID, record.otelSpanID) == ("0", "0")


def test_formatter_from_settings_renders_the_ids():
    tracer = TracerProvider().get_tracer("test")
    formatter = logging.Formatter("[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s")
    with tracer.start_as_current_span("work") as span:
        line = formatter.format(filtered_record())
    assert (
        line == f"[trace_id={trace.format_trace_id(span.get_span_context().trace_id)} "
        f"span_id={trace.format_span_id(span.get_span_context().span_id)}] message"
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[scale.Cluster]:
    """The service and its Celery queue on Redis (workers started by the test), stopped afterwards."""
    require_service("127.0.0.1", 6379, "Redis")
    with OtlpReceiver() as receiver:
        started = scale.Cluster(tmp_path, receiver, scale.BROKER_URL)
        try:
            yield started
        finally:
            started.stop()


@pytest.mark.services
@pytest.mark.slow
def test_prefork_celery_worker_logs_start_up_task_results_and_trace_ids_from_its_children(
    cluster: scale.Cluster,
) -> None:
    """The documented worker command (prefork pool): its child processes' log lines reach the worker's output."""
    cluster.start_worker("logs", pool="prefork")
    submitted = cluster.submit("hello", request_id="prefork-logs")

    def finished() -> dict[str, Any] | None:
        execution = cluster.execution(submitted["id"])
        return execution if execution["status"] in ("succeeded", "failed") else None

    execution = wait_until(finished, timeout=60, message="the async execution")
    assert execution["status"] == "succeeded", execution
    line = f"execution {submitted['id']} of hello v1 succeeded"
    log = wait_until(lambda: line in cluster.log("logs") and cluster.log("logs"), timeout=20, message=line)
    assert "tracing enabled: service.name=flowexec-worker" in log, log
    assert "already instrumented" not in log, log  # Celery (and the rest) instrumented once per process
    [result] = [entry for entry in log.splitlines() if line in entry]
    assert f"trace_id={execution['trace_id']}" in result, result

"""tracing/telemetry.py: what the trace, metric and log pipelines share about failing exports."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from opentelemetry.sdk import _shared_internal

from tracing import telemetry


def test_the_sdks_queue_full_warning_is_logged_once_per_process_not_once_per_window(monkeypatch, caplog):
    telemetry.FailureReporter("trace", "http://127.0.0.1:9/v1/traces")  # as every exporter wrapper does
    sdk_logger = logging.getLogger("opentelemetry.sdk._shared_internal")
    clock = iter(range(0, 10_000, 100))
    # The SDK's own DuplicateFilter repeats a line every 20 s window: step the clock past a window per line.
    monkeypatch.setattr(_shared_internal, "time", SimpleNamespace(time=lambda: next(clock)))
    with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk._shared_internal"):
        for _ in range(5):
            sdk_logger.warning("Queue full, dropping %s.", "Span")
        sdk_logger.warning("Exception while exporting %s.", "Span")
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("Queue full, dropping Span.") <= 1
    assert "Exception while exporting Span." in messages

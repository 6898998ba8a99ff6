"""OTLP log export: records carry the trace and span ids of the execution that logged them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from executions import submission
from tests.otlp_signals import SignalReceiver
from tracing.config import ProcessDefaults, logs_config, tracing_config
from tracing.log_export import log_handler, logger_provider_for
from tracing.metrics import shared_resource

RESOURCE = shared_resource(tracing_config({}, ProcessDefaults("flowexec-service")))


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with SignalReceiver() as running:
        yield running


@pytest.mark.django_db(transaction=True)
def test_otlp_log_records_carry_the_execution_trace_and_span_ids(
    make_flow: Any, receiver: SignalReceiver, monkeypatch: pytest.MonkeyPatch, spans: Any
) -> None:
    environ = {"OTEL_LOGS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{receiver.base_url}/v1/logs"}
    provider, used = logger_provider_for(logs_config(environ), RESOURCE)
    assert provider is not None and used[0].startswith("otlp(")
    services_logger = logging.getLogger("executions.services")
    handler = log_handler(provider)
    services_logger.addHandler(handler)
    try:
        make_flow(name="logged", steps=[{"name": "hello", "type": "template", "template": "hi"}])
        execution = submission.execution_submit(flow="logged", inputs={}, inline=True)
    finally:
        services_logger.removeHandler(handler)
    assert provider.force_flush(5000)
    receiver.wait_for(lambda r: any(str(execution.pk) in str(log.body) for log in r.logs))
    [record] = [log for log in receiver.logs if str(execution.pk) in str(log.body)]
    assert (record.trace_id, record.span_id) == (execution.trace_id, execution.span_id)
    assert record.severity == "INFO"
    assert record.resource["service.name"] == "flowexec-service"
    provider.shutdown()


def test_no_logs_exporter_means_no_provider() -> None:
    assert logger_provider_for(logs_config({}), RESOURCE) == (None, ())


@pytest.mark.django_db(transaction=True)
def test_dead_logs_backend_warns_once_and_never_feeds_on_itself(
    make_flow: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.live import free_port

    environ = {"OTEL_LOGS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://127.0.0.1:{free_port()}/v1/logs"}
    provider, _ = logger_provider_for(logs_config(environ), RESOURCE)
    root = logging.getLogger()
    handler = log_handler(provider)
    root.addHandler(handler)
    caplog.set_level(logging.INFO)
    try:
        make_flow(name="logged", steps=[{"name": "hello", "type": "template", "template": "hi"}])
        for _ in range(3):
            assert submission.execution_submit(flow="logged", inputs={}, inline=True).status == "succeeded"
            provider.force_flush(5000)
    finally:
        root.removeHandler(handler)
        provider.shutdown()
    failing = [r for r in caplog.records if "log export to" in r.getMessage()]
    assert len(failing) == 1 and "failing" in failing[0].getMessage()
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]

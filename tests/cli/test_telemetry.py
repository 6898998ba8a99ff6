"""flowexec.cli.telemetry: where the API token may go with the CLI's spans."""

from __future__ import annotations

import pytest

from flowexec.cli import telemetry
from tests.cli.support import settings_for


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        ({}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://svc:8000/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://SVC:8000/"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://svc:4318/v1/traces"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://svc:8000/v1/traces"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://svc:8000/other"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://svc:8000"}, False),
    ],
)
def test_the_token_rides_only_on_export_to_the_services_own_v1_traces_over_http(environ, allowed):
    settings = settings_for(["--url", "http://svc:8000", "--token", "k", "flows"], {})
    headers = telemetry.cli_tracing_config(settings, environ).otlp.headers
    assert dict(headers) == ({"Authorization": "Token k"} if allowed else {})


def test_default_ports_count_as_the_same_origin():
    environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://svc.example/api/v1/traces"}
    for url, allowed in (("https://svc.example:443/api", True), ("https://svc.example:443", False)):
        settings = settings_for(["--url", url, "--token", "k", "flows"], {})
        assert bool(telemetry.cli_tracing_config(settings, environ).otlp.headers) is allowed


def test_headers_the_operator_set_are_kept_and_no_token_is_added():
    settings = settings_for(["--url", "http://svc:8000", "--token", "k", "flows"], {})
    environ = {"OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=abc"}
    assert dict(telemetry.cli_tracing_config(settings, environ).otlp.headers) == {"x-collector-key": "abc"}


def test_urllib3_already_instrumented_by_the_launcher_is_not_instrumented_again(monkeypatch, caplog):
    import urllib3
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    from tracing import provider

    enabled = provider.TracingState(True, None, (), "")
    monkeypatch.setattr(provider, "configure_tracing", lambda config, factories: enabled)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")  # the one case the CLI instruments urllib3
    monkeypatch.setattr("tracing.metrics.configure_metrics", lambda settings, resource: None)
    instrumentor = URLLib3Instrumentor()
    already = instrumentor.is_instrumented_by_opentelemetry
    if not already:
        instrumentor.instrument()
    try:
        telemetry.Tracing.start(settings_for(["list"], {}), urllib3.PoolManager())
    finally:
        if not already:
            instrumentor.uninstrument()
    assert "already instrumented" not in caplog.text


def test_the_cli_exports_otlp_http_with_its_own_exporter_on_the_api_clients_pool_and_grpc_with_the_sdks():
    import urllib3

    from flowexec.cli.otlp import OtlpHttpSpanExporter

    settings = settings_for(["--url", "http://svc:8000", "--token", "k", "flows"], {})
    pool = urllib3.PoolManager()
    spec = telemetry.otlp_exporter(telemetry.cli_tracing_config(settings, {}), user_agent="ua/1", pool=pool)
    assert isinstance(spec.exporter, OtlpHttpSpanExporter) and spec.batched
    assert spec.exporter.endpoint == "http://svc:8000/v1/traces"
    assert spec.exporter.timeout == telemetry.OTLP_TIMEOUT_SECONDS
    assert spec.exporter._pool is pool
    grpc = telemetry.cli_tracing_config(settings, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert type(telemetry.otlp_exporter(grpc, user_agent="ua/1", pool=pool).exporter).__module__.startswith(
        "opentelemetry.exporter.otlp.proto.grpc"
    )

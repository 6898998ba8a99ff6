"""tracing/config.py: one pure reading of the OTEL_* variables per signal, from the mapping it is given."""

from __future__ import annotations

import logging
import os

import pytest

from tests.live import free_port
from tests.otlp_signals import SignalReceiver
from tracing.config import (
    LogsConfig,
    MetricsConfig,
    OtlpConfig,
    ProcessDefaults,
    PrometheusConfig,
    logs_config,
    metrics_config,
    otlp_config,
    tracing_config,
)
from tracing.log_export import log_handler, logger_provider_for
from tracing.metrics import meter_provider_for, shared_resource, temporality_for

RESOURCE = shared_resource(tracing_config({}, ProcessDefaults("config-test")))


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_each_signal_reads_its_own_variables_over_the_generic_ones(signal):
    upper = signal.upper()
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-generic=1",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "9",
        f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT": f"http://own:4318/custom/{signal}",
        f"OTEL_EXPORTER_OTLP_{upper}_HEADERS": "x-own=2",
        f"OTEL_EXPORTER_OTLP_{upper}_TIMEOUT": "1.5",
        f"OTEL_EXPORTER_OTLP_{upper}_COMPRESSION": "GZIP",
    }
    assert otlp_config(environ, signal) == OtlpConfig(
        protocol="http/protobuf",
        endpoint=f"http://own:4318/custom/{signal}",
        headers={"x-own": "2"},
        timeout=1.5,
        compression="gzip",
        endpoint_from_environment=True,
    )


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_the_generic_endpoint_gets_the_signal_path_and_the_defaults_are_the_spec_ones(signal):
    assert otlp_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, signal).endpoint == f"http://c:4318/v1/{signal}"
    assert otlp_config({}, signal).endpoint == f"http://localhost:4318/v1/{signal}"
    grpc = otlp_config({f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL": "grpc"}, signal)
    assert (grpc.protocol, grpc.endpoint) == ("grpc", "http://localhost:4317")
    # Another signal's variables never leak into this one.
    other = next(s for s in ("traces", "metrics", "logs") if s != signal)
    elsewhere = otlp_config({f"OTEL_EXPORTER_OTLP_{other.upper()}_ENDPOINT": "http://x/"}, signal)
    assert elsewhere.endpoint_from_environment is False


def test_headers_never_appear_in_a_repr():
    config = otlp_config({"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Token%20s3cret"}, "metrics")
    assert config.headers["authorization"] == "Token s3cret"
    assert "s3cret" not in repr(config)
    assert "s3cret" not in repr(metrics_config({"OTEL_EXPORTER_OTLP_HEADERS": "a=s3cret"}))
    assert "s3cret" not in repr(PrometheusConfig(token="s3cret"))


def test_metrics_config_reads_only_the_mapping_it_is_given():
    environ = {
        "OTEL_METRICS_EXPORTER": "otlp,prometheus,none,otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_METRIC_EXPORT_TIMEOUT": "700",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
        "OTEL_METRICS_EXEMPLAR_FILTER": "always_off",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "::1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "9999",
        "FLOWEXEC_PROMETHEUS_PATH": "/scrape",
        "FLOWEXEC_PROMETHEUS_TOKEN": "t0k",
    }
    before = dict(os.environ)
    got = metrics_config(environ)
    assert dict(os.environ) == before
    assert got == MetricsConfig(
        exporters=("otlp", "prometheus"),
        otlp=otlp_config(environ, "metrics"),
        export_interval_millis=500,
        export_timeout_millis=700,
        temporality="delta",
        histogram_aggregation="base2_exponential_bucket_histogram",
        exemplar_filter="always_off",
        prometheus=PrometheusConfig(host="::1", port=9999, path="/scrape", token="t0k"),
    )
    assert metrics_config({"OTEL_SDK_DISABLED": "TRUE"}).disabled


def test_logs_config_reads_only_the_mapping_it_is_given():
    environ = {"OTEL_LOGS_EXPORTER": "console", "OTEL_BLRP_SCHEDULE_DELAY": "50", "OTEL_BLRP_MAX_QUEUE_SIZE": "10"}
    got = logs_config(environ)
    assert got.exporters == ("console",) and got.otlp.endpoint == "http://localhost:4318/v1/logs"
    assert (got.batch.schedule_delay_millis, got.batch.max_queue_size) == (50, 10)
    assert logs_config({}) == LogsConfig()


def test_bad_metrics_and_logs_values_warn_and_fall_back(caplog):
    environ = {
        "OTEL_METRICS_EXPORTER": "statsd,console",
        "OTEL_LOGS_EXPORTER": "fluentd",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes",
        "OTEL_METRICS_EXEMPLAR_FILTER": "most",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "70000",
        "FLOWEXEC_PROMETHEUS_PATH": "metrics?x=1",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json",
    }
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        metrics = metrics_config(environ)
        logs = logs_config(environ)
    assert metrics.exporters == ("console",) and logs.exporters == ()
    assert (metrics.temporality, metrics.exemplar_filter) == ("cumulative", "trace_based")
    assert metrics.prometheus == PrometheusConfig()
    assert metrics.otlp.protocol == "http/protobuf"
    assert len(caplog.records) == 7


@pytest.mark.parametrize("preference", ["cumulative", "delta", "lowmemory"])
def test_temporality_matches_what_the_sdk_exporter_derives_from_the_same_preference(preference, monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    # The SDK reads the variable itself: set it only to learn its mapping.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    assert temporality_for(preference) == OTLPMetricExporter()._preferred_temporality


@pytest.mark.django_db(transaction=True)
def test_metric_and_log_providers_send_where_the_config_says_not_where_the_environment_does(
    monkeypatch, make_flow
):
    from executions import metrics as flow_metrics
    from executions import submission

    dead = f"http://127.0.0.1:{free_port()}"
    # What the process environment says must not matter: the builders read only the objects.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", dead)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "cumulative")
    with SignalReceiver() as receiver:
        environ = {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=from-config",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
        }
        state = meter_provider_for(metrics_config(environ), RESOURCE)
        provider, _ = logger_provider_for(logs_config(environ), RESOURCE)
        monkeypatch.setattr(flow_metrics, "_metrics", flow_metrics.FlowMetrics(state.provider.get_meter("flowexec")))
        make_flow(name="configured", steps=[{"name": "hello", "type": "template", "template": "hi"}])
        assert submission.execution_submit(flow="configured", inputs={}, inline=True).status == "succeeded"
        handler = log_handler(provider)
        logging.getLogger("config-test").addHandler(handler)
        try:
            logging.getLogger("config-test").warning("configured log line")
        finally:
            logging.getLogger("config-test").removeHandler(handler)
        assert state.provider.force_flush(5000) and provider.force_flush(5000)
        receiver.wait_for(lambda r: r.metrics and any("configured log line" in str(log.body) for log in r.logs))
        assert receiver.latest("flowexec.execution.finished").temporality == "DELTA"
        assert receiver.request_headers and all(h.get("x-tenant") == "from-config" for h in receiver.request_headers)
    state.close()
    provider.shutdown()


def test_tracing_config_reads_only_the_mapping_it_is_given():
    environ = {
        "OTEL_SERVICE_NAME": "from-mapping",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,team=a%20b",
        "OTEL_TRACES_EXPORTER": "otlp,console,none,otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=t1",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1.5",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64",
        "OTEL_PROPAGATORS": "baggage,tracecontext",
    }
    before = dict(os.environ)
    got = tracing_config(environ, ProcessDefaults("default-svc", otlp_headers={"authorization": "Token t"}))
    assert dict(os.environ) == before
    assert got.service_name == "from-mapping"
    assert got.resource["deployment.environment"] == "ci" and got.resource["team"] == "a b"
    assert got.exporters == ("otlp", "console")
    # The generic endpoint gets the signal path; headers from the environment replace the process defaults.
    assert got.otlp == OtlpConfig(
        protocol="http/protobuf",
        endpoint="http://collector:4318/v1/traces",
        headers={"x-tenant": "t1"},
        timeout=1.5,
        endpoint_from_environment=True,
    )
    assert (got.sampler, got.sampler_arg) == ("parentbased_traceidratio", 0.25)
    assert got.batch.schedule_delay_millis == 100
    assert got.limits.max_span_attribute_length == 64
    assert got.propagators == ("baggage", "tracecontext")


def test_process_defaults_apply_when_the_environment_is_silent():
    defaults = ProcessDefaults(
        "flowexec-cli",
        exporters=("otlp",),
        otlp_endpoint="http://127.0.0.1:8000/v1/traces",
        otlp_headers={"authorization": "Token t"},
        otlp_timeout=0.75,
    )
    got = tracing_config({}, defaults)
    assert got.service_name == "flowexec-cli" and got.exporters == ("otlp",)
    assert got.otlp.endpoint == "http://127.0.0.1:8000/v1/traces" and not got.otlp.endpoint_from_environment
    assert dict(got.otlp.headers) == {"authorization": "Token t"}
    # The CLI's export budget is data now, not a write to os.environ.
    assert got.otlp.timeout == 0.75
    # The process default is an OTLP/HTTP URL: gRPC goes to its own default instead.
    grpc = tracing_config({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, defaults)
    assert grpc.otlp.endpoint == "http://localhost:4317"


def test_bad_values_warn_and_fall_back(caplog):
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
        "OTEL_TRACES_SAMPLER": "sometimes",
        "OTEL_SPAN_EVENT_COUNT_LIMIT": "-1",
    }
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        got = tracing_config(environ, ProcessDefaults("svc", otlp_timeout=2.0))
    assert got.otlp.protocol == "http/protobuf" and got.otlp.timeout == 2.0
    assert got.sampler == "parentbased_always_on" and got.limits.max_events == 128
    assert len(caplog.records) == 4

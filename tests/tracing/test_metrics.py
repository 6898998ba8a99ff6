"""Flow metrics over OTLP (decoded from protobuf) and Prometheus, from a MeterProvider built from a MetricsConfig."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from prometheus_client.parser import text_string_to_metric_families

from executions import metrics as flow_metrics
from executions import submission
from executions.models import Execution
from tests.otlp_signals import SignalReceiver
from tracing.config import ProcessDefaults, metrics_config, tracing_config
from tracing.metrics import MetricsState, meter_provider_for, shared_resource

RESOURCE = shared_resource(tracing_config({}, ProcessDefaults("flowexec-service")))

FLOW_X = {
    "name": "flow-x",
    "inputs": {"text": {"type": "string"}},
    "steps": [{"name": "parse", "type": "python", "function": "json_loads", "args": {"text": "${inputs.text}"}}],
    "outputs": {"value": "${steps.parse.output}"},
}


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with SignalReceiver() as running:
        yield running


@pytest.fixture
def use_metrics(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build a provider from an environment mapping and make executions.metrics record into it."""
    states: list[MetricsState] = []

    def use(environ: dict[str, str]) -> MetricsState:
        state = meter_provider_for(metrics_config(environ), RESOURCE)
        assert state.provider is not None, state.description
        monkeypatch.setattr(flow_metrics, "_metrics", flow_metrics.FlowMetrics(state.provider.get_meter("flowexec")))
        states.append(state)
        return state

    yield use
    for state in states:
        state.close()


def _run_known_set(make_flow: Any) -> list[Execution]:
    """3 succeeded and 1 failed execution of flow-x."""
    make_flow(**FLOW_X)
    texts = ['{"a": 1}', "[1, 2]", "3", "not json"]
    executions = [submission.execution_submit(flow="flow-x", inputs={"text": text}, inline=True) for text in texts]
    assert [e.status for e in executions] == ["succeeded"] * 3 + ["failed"]
    return executions


@pytest.mark.django_db(transaction=True)
def test_flow_metrics_arrive_over_otlp_with_names_units_attributes_and_values(
    make_flow: Any, receiver: SignalReceiver, use_metrics: Any, monkeypatch: pytest.MonkeyPatch, spans: Any
) -> None:
    state = use_metrics(
        {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{receiver.base_url}/v1/metrics",
        }
    )
    executions = _run_known_set(make_flow)
    assert state.provider.force_flush(5000)
    receiver.wait_for(lambda r: any(m.name == flow_metrics.EXECUTION_DURATION for m in r.metrics))

    started = receiver.latest("flowexec.execution.started")
    assert (started.unit, started.kind, started.monotonic) == ("{execution}", "sum", True)
    assert [(p.attributes, p.value) for p in started.points] == [({"flow.name": "flow-x"}, 4)]

    finished = receiver.latest("flowexec.execution.finished")
    assert finished.unit == "{execution}"
    assert sorted((p.attributes["flow.execution.status"], p.value) for p in finished.points) == [
        ("failed", 1),
        ("succeeded", 3),
    ]

    duration = receiver.latest("flowexec.execution.duration")
    assert (duration.unit, duration.kind) == ("s", "histogram")
    by_status = {p.attributes["flow.execution.status"]: p for p in duration.points}
    assert {status: p.count for status, p in by_status.items()} == {"succeeded": 3, "failed": 1}
    assert sum(p.count for p in duration.points) == 4
    # Exemplars link the histogram points to the executions' traces.
    exemplar_traces = {trace_id for p in duration.points for trace_id in p.exemplar_trace_ids}
    assert exemplar_traces and exemplar_traces <= {e.trace_id for e in executions}

    queue = receiver.latest("flowexec.execution.queue.duration")
    assert queue.unit == "s" and sum(p.count for p in queue.points) == 4

    active = receiver.latest("flowexec.execution.active")
    assert (active.kind, active.monotonic) == ("sum", False)
    assert [p.value for p in active.points] == [0]

    steps = receiver.latest("flowexec.step.duration")
    assert steps.unit == "s"
    assert sorted((p.attributes["flow.step.status"], p.count) for p in steps.points) == [
        ("failed", 1),
        ("succeeded", 3),
    ]
    assert all(
        p.attributes.keys() == {"flow.name", "flow.step.name", "flow.step.type", "flow.step.status"}
        and p.attributes["flow.step.type"] == "python"
        for p in steps.points
    )
    # No ids as attributes: nothing an execution or trace id could make unbounded.
    ids = {str(e.pk) for e in executions} | {e.trace_id for e in executions}
    # The same resource as this process's traces, down to service.instance.id.
    from opentelemetry import trace

    traces_resource = trace.get_tracer_provider().resource.attributes
    for metric in receiver.metrics:
        assert metric.resource["service.name"] == "flowexec-service"
        assert metric.resource["service.instance.id"] == traces_resource["service.instance.id"]
        assert not ids & {str(v) for p in metric.points for v in p.attributes.values()}


@pytest.mark.django_db(transaction=True)
def test_step_retries_are_counted(make_flow: Any, receiver: SignalReceiver, use_metrics: Any, monkeypatch) -> None:
    state = use_metrics(
        {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{receiver.base_url}/v1/metrics",
        }
    )
    make_flow(name="flaky", steps=[{"name": "boom", "type": "fail", "retries": 2}])
    assert submission.execution_submit(flow="flaky", inputs={}, inline=True).status == "failed"
    state.provider.force_flush(5000)
    receiver.wait_for(lambda r: any(m.name == flow_metrics.STEP_RETRIES for m in r.metrics))
    retries = receiver.latest("flowexec.step.retries")
    assert retries.unit == "{retry}"
    assert [(p.attributes, p.value) for p in retries.points] == [
        ({"flow.name": "flaky", "flow.step.name": "boom", "flow.step.type": "fail"}, 2)
    ]


@pytest.mark.django_db(transaction=True)
def test_delta_temporality_preference_is_honoured(
    make_flow: Any, receiver: SignalReceiver, use_metrics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = use_metrics(
        {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url,
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
        }
    )
    _run_known_set(make_flow)
    state.provider.force_flush(5000)
    receiver.wait_for(lambda r: any(m.name == flow_metrics.EXECUTION_FINISHED for m in r.metrics))
    assert receiver.latest("flowexec.execution.finished").temporality == "DELTA"
    assert receiver.latest("flowexec.execution.duration").temporality == "DELTA"


@pytest.mark.django_db(transaction=True)
def test_prometheus_endpoint_on_loopback_serves_parsable_flow_metrics(
    make_flow: Any, use_metrics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = use_metrics({"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": "0"})
    assert state.prometheus_address is not None
    host, port = state.prometheus_address
    assert host == "127.0.0.1"
    _run_known_set(make_flow)

    response = urllib3.request("GET", f"http://{host}:{port}/metrics", timeout=5)
    assert response.status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.data.decode())
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({**labels, "otel_scope_name": "flowexec"}.items())))
        matches = [v for (n, lbls), v in samples.items() if n == name and set(key[1]) <= set(lbls)]
        assert len(matches) == 1, f"{name} {labels}: {matches}"
        return matches[0]

    assert value("flowexec_execution_started_total", flow_name="flow-x") == 4
    assert value("flowexec_execution_finished_total", flow_name="flow-x", flow_execution_status="succeeded") == 3
    assert value("flowexec_execution_finished_total", flow_name="flow-x", flow_execution_status="failed") == 1
    succeeded = {"flow_name": "flow-x", "flow_execution_status": "succeeded"}
    assert value("flowexec_execution_duration_seconds_count", **succeeded) == 3
    assert value("flowexec_execution_active", flow_name="flow-x") == 0


@pytest.mark.django_db(transaction=True)
def test_dead_metrics_backend_warns_once_and_executions_still_succeed(
    make_flow: Any, use_metrics: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.live import free_port

    state = use_metrics(
        {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{free_port()}/v1/metrics",
        }
    )
    caplog.set_level(logging.INFO)
    for _ in range(3):
        assert _run_known_set(make_flow)
        state.provider.force_flush(5000)
    failing = [r for r in caplog.records if "metric export to" in r.getMessage()]
    assert len(failing) == 1 and "failing" in failing[0].getMessage()
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]


def test_no_exporter_means_no_provider() -> None:
    assert meter_provider_for(metrics_config({}), RESOURCE).provider is None
    assert meter_provider_for(metrics_config({"OTEL_METRICS_EXPORTER": "none"}), RESOURCE).provider is None


def test_unknown_metrics_exporter_warns_and_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    state = meter_provider_for(metrics_config({"OTEL_METRICS_EXPORTER": "statsd,console"}), RESOURCE)
    assert state.exporters == ("console",)
    assert "unknown exporter 'statsd' in OTEL_METRICS_EXPORTER" in caplog.text
    state.close()


def test_prometheus_takes_the_next_free_port_when_the_configured_one_is_taken(
    use_metrics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        state = use_metrics({"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)})
        assert state.prometheus_address is not None
        assert port < state.prometheus_address[1] < port + 16
        response = urllib3.request("GET", f"http://127.0.0.1:{state.prometheus_address[1]}/metrics", timeout=5)
        assert response.status == 200
    finally:
        taken.close()


def test_metric_and_log_setup_import_without_django() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tracing.metrics, tracing.log_export, tracing.telemetry; "
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.django_db(transaction=True)
def test_an_execution_failed_by_the_stale_sweep_counts_as_finished_but_not_as_active_here(
    make_flow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from django.utils import timezone
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from executions import services

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(flow_metrics, "_metrics", flow_metrics.FlowMetrics(provider.get_meter("flowexec")))
    flow = make_flow(**FLOW_X)
    orphan = services.execution_create(flow=flow, inputs={"text": "1"})
    long_ago = timezone.now() - timedelta(minutes=10)
    Execution.objects.filter(pk=orphan.pk).update(
        status=Execution.Status.RUNNING, runner="other-host:1:cafe", heartbeat_at=long_ago, started_at=long_ago
    )

    assert services.execution_fail_stale(stale_after=60) == 1

    points = {
        metric.name: [(dict(p.attributes), p.value) for p in metric.data.data_points]
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name in (flow_metrics.EXECUTION_FINISHED, flow_metrics.EXECUTION_ACTIVE)
    }
    assert points[flow_metrics.EXECUTION_FINISHED] == [({"flow.name": "flow-x", "flow.execution.status": "failed"}, 1)]
    # The dead runner's process held it as active; this process never did.
    assert points.get(flow_metrics.EXECUTION_ACTIVE, []) in ([], [({"flow.name": "flow-x"}, 0)])
    provider.shutdown()


def test_prometheus_with_a_token_serves_its_path_only_to_that_bearer(use_metrics: Any) -> None:
    state = use_metrics(
        {
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
            "FLOWEXEC_PROMETHEUS_PATH": "/internal/metrics",
            "FLOWEXEC_PROMETHEUS_TOKEN": "scrape-s3cret",
        }
    )
    assert state.prometheus_address is not None
    base = f"http://127.0.0.1:{state.prometheus_address[1]}"
    assert "scrape-s3cret" not in state.description and "bearer token" in state.description

    def get(path: str, **headers: str) -> urllib3.BaseHTTPResponse:
        return urllib3.request("GET", base + path, headers=headers, timeout=5, retries=False)

    assert get("/internal/metrics").status == 401
    assert get("/internal/metrics", Authorization="Bearer wrong").status == 401
    assert get("/internal/metrics", Authorization="Token scrape-s3cret").status == 401
    assert get("/metrics", Authorization="Bearer scrape-s3cret").status == 404
    state.provider.get_meter("probe").create_counter("probe.scrapes").add(3)
    response = get("/internal/metrics", Authorization="Bearer scrape-s3cret")
    assert response.status == 200
    samples = {s.name: s.value for f in text_string_to_metric_families(response.data.decode()) for s in f.samples}
    assert samples["probe_scrapes_total"] == 3


def test_prometheus_on_a_network_address_without_a_token_is_not_started(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = metrics_config({"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0"})
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        state = meter_provider_for(config, RESOURCE)
    assert state.provider is None and state.prometheus_server is None
    assert "FLOWEXEC_PROMETHEUS_TOKEN is not set" in caplog.text

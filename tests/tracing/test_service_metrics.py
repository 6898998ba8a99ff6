"""The running service sets up metrics and log export from OTEL_* at start-up and sends both over OTLP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import LiveService, start_service
from tests.otlp_signals import SignalReceiver
from tests.tracing.test_metrics import FLOW_X

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with SignalReceiver() as running:
        yield running


@pytest.fixture
def service(tmp_path: Path, receiver: SignalReceiver) -> Iterator[LiveService]:
    running = start_service(
        tmp_path,
        env={
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{receiver.base_url}/v1/metrics",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{receiver.base_url}/v1/logs",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
        },
    )
    yield running
    running.stop()


def test_service_exports_flow_metrics_and_trace_correlated_logs(service: LiveService, receiver: SignalReceiver) -> None:
    assert service.request("POST", "/api/flows/", json=FLOW_X).status == 201
    statuses, trace_ids = [], set()
    for text in ['{"a": 1}', "[1]", "2", "not json"]:
        response = service.request("POST", "/api/executions/", json={"flow": "flow-x", "inputs": {"text": text}})
        body = json.loads(response.data)
        statuses.append(body["status"])
        trace_ids.add(body["trace_id"])
    assert statuses == ["succeeded"] * 3 + ["failed"]

    def finished_counts(r: SignalReceiver) -> dict[str, float]:
        points = [p for m in r.metrics if m.name == "flowexec.execution.finished" for p in m.points]
        return {p.attributes["flow.execution.status"]: p.value for p in points}

    receiver.wait_for(lambda r: finished_counts(r) == {"succeeded": 3, "failed": 1}, timeout=20)
    duration = receiver.latest("flowexec.execution.duration")
    assert sum(p.count for p in duration.points) == 4
    assert duration.resource["service.name"] == "flowexec-service"
    # Django's own HTTP server metrics now have a provider too.
    assert any(m.name.startswith("http.server.") for m in receiver.metrics)

    receiver.wait_for(lambda r: trace_ids <= {log.trace_id for log in r.logs}, timeout=20)

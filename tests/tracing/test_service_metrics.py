"""The running service sets up metrics and log export from OTEL_* at start-up and sends both over OTLP."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_cli_exports_its_http_client_metrics_when_asked(live_service: LiveService, receiver: SignalReceiver) -> None:
    env = live_service.client_env(
        OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"{receiver.base_url}/v1/metrics"
    )
    done = subprocess.run(
        [sys.executable, "-m", "flowexec.cli", "run", "hello"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    receiver.wait_for(lambda r: any(m.name.startswith("http.client.") for m in r.metrics), timeout=10)
    client = next(m for m in receiver.metrics if m.name.startswith("http.client."))
    assert client.resource["service.name"] == "flowexec-cli"


def test_service_keeps_the_log_lines_of_an_execution_in_the_store(live_service: LiveService) -> None:
    import sqlite3

    from tests.live import wait_until

    if not live_service.database_url.startswith("sqlite:///"):
        pytest.skip("reads the service's SQLite file directly")
    response = live_service.request("POST", "/api/executions/", json={"flow": "hello", "inputs": {}})
    execution = json.loads(response.data)
    database = sqlite3.connect(live_service.database_url.removeprefix("sqlite:///"))

    def stored() -> list[tuple[str, str]]:
        query = "select span_id, message from tracing_logline where trace_id = ?"
        return database.execute(query, (execution["trace_id"],)).fetchall()

    lines = wait_until(lambda: [row for row in stored() if execution["id"] in row[1]], timeout=10, message="log line")
    assert lines[0][0] == execution["span_id"]

"""Each gunicorn and Celery worker process has its own MeterProvider: Prometheus per worker, OTLP from workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from prometheus_client.parser import text_string_to_metric_families

from tests.live import free_port, start_service
from tests.otlp_signals import SignalReceiver
from tests.scale.test_celery import make_cluster, receiver  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


@pytest.fixture
def signals() -> Iterator[SignalReceiver]:
    with SignalReceiver() as running:
        yield running


def _scrape(port: int) -> dict[str, Any]:
    """target_info's service.instance.id (None before the worker recorded anything) and executions started."""
    response = urllib3.request("GET", f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status == 200
    samples = [sample for family in text_string_to_metric_families(response.data.decode()) for sample in family.samples]
    instance = next((s.labels["service_instance_id"] for s in samples if s.name == "target_info"), None)
    started = sum(s.value for s in samples if s.name == "flowexec_execution_started_total")
    return {"instance": instance, "started": started}


def test_each_gunicorn_worker_serves_its_own_prometheus_endpoint(tmp_path: Path) -> None:
    port = free_port()
    service = start_service(
        tmp_path, server="gunicorn", workers=2,
        env={"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)},
    )
    try:
        for _ in range(6):
            assert service.request("POST", "/api/executions/", json={"flow": "hello", "inputs": {}}).status == 201

        scraped = [_scrape(port), _scrape(port + 1)]
        assert scraped[0]["started"] + scraped[1]["started"] == 6, scraped
        instances = [item["instance"] for item in scraped if item["instance"]]
        assert len(set(instances)) == len(instances), "one registry per worker process"
    finally:
        service.stop()


@pytest.mark.services
def test_celery_worker_exports_queue_wait_and_outcomes_over_otlp(make_cluster: Any, signals: SignalReceiver) -> None:  # noqa: F811
    cluster = make_cluster(
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"{signals.base_url}/v1/metrics",
        OTEL_METRIC_EXPORT_INTERVAL="300",
    )
    cluster.start_worker("metrics")
    for number in range(2):
        cluster.submit("hello", request_id=f"metrics-{number}")

    def worker_points(name: str) -> list[Any]:
        """The points of the worker's latest export of this (cumulative) metric."""
        exports = [m for m in signals.metrics if m.name == name and m.resource.get("service.name") == "flowexec-worker"]
        return exports[-1].points if exports else []

    signals.wait_for(lambda r: sum(p.count for p in worker_points("flowexec.execution.queue.duration")) == 2,
                     timeout=30)
    finished = worker_points("flowexec.execution.finished")
    assert {p.attributes["flow.execution.status"]: p.value for p in finished} == {"succeeded": 2}

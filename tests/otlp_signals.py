"""Test receiver for OTLP/HTTP protobuf metrics and logs on 127.0.0.1, decoded into plain Python values."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tests.otlp_receiver import key_values

METRICS_PATH = "/v1/metrics"
LOGS_PATH = "/v1/logs"


@dataclass
class Point:
    """One data point: attributes, value (sum/gauge) or count/sum/buckets (histogram), exemplar trace ids."""

    attributes: dict[str, Any]
    value: float | None = None
    count: int = 0
    sum: float = 0.0
    exemplar_trace_ids: list[str] = field(default_factory=list)


@dataclass
class ReceivedMetric:
    """One metric of one export request."""

    name: str
    unit: str
    kind: str  # sum, gauge, histogram
    monotonic: bool
    temporality: str  # CUMULATIVE, DELTA, ""
    points: list[Point]
    resource: dict[str, Any]


@dataclass
class ReceivedLog:
    """One log record as it arrived."""

    body: Any
    severity: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


def _metrics(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[ReceivedMetric]:
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    received = []
    for resource_metrics in request.resource_metrics:
        resource = key_values(resource_metrics.resource.attributes)
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                points = []
                for point in data.data_points:
                    exemplars = [exemplar.trace_id.hex() for exemplar in point.exemplars]
                    if kind == "histogram":
                        points.append(Point(key_values(point.attributes), None, point.count, point.sum, exemplars))
                    else:
                        value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                        points.append(Point(key_values(point.attributes), value, exemplar_trace_ids=exemplars))
                temporality = getattr(data, "aggregation_temporality", 0)
                received.append(
                    ReceivedMetric(
                        name=metric.name,
                        unit=metric.unit,
                        kind=kind,
                        monotonic=bool(getattr(data, "is_monotonic", False)),
                        temporality=metrics_pb2.AggregationTemporality.Name(temporality).removeprefix(
                            "AGGREGATION_TEMPORALITY_"
                        )
                        if temporality
                        else "",
                        points=points,
                        resource=resource,
                    )
                )
    return received


def _logs(request: logs_service_pb2.ExportLogsServiceRequest) -> list[ReceivedLog]:
    from tests.otlp_receiver import any_value

    received = []
    for resource_logs in request.resource_logs:
        resource = key_values(resource_logs.resource.attributes)
        for scope in resource_logs.scope_logs:
            for record in scope.log_records:
                received.append(
                    ReceivedLog(
                        body=any_value(record.body),
                        severity=record.severity_text,
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        attributes=key_values(record.attributes),
                        resource=resource,
                    )
                )
    return received


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        receiver = self.server.receiver
        with receiver._condition:
            receiver.request_headers.append({key.lower(): value for key, value in self.headers.items()})
        if path == METRICS_PATH:
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            receiver._add(metrics=_metrics(request))
            reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        elif path == LOGS_PATH:
            request = logs_service_pb2.ExportLogsServiceRequest()
            request.ParseFromString(body)
            receiver._add(logs=_logs(request))
            reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        else:
            reply = b""
        self.send_response(200 if reply or path in (METRICS_PATH, LOGS_PATH) else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: SignalReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver


class SignalReceiver:
    """OTLP/HTTP metrics + logs receiver on a random 127.0.0.1 port, with bounded waits."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.metrics: list[ReceivedMetric] = []
        self.logs: list[ReceivedLog] = []
        # The headers of every request, names lower-cased.
        self.request_headers: list[dict[str, str]] = []
        self._server = _Server(self)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SignalReceiver:
        threading.Thread(target=self._server.serve_forever, name="otlp-signals", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _add(self, *, metrics: list[ReceivedMetric] | None = None, logs: list[ReceivedLog] | None = None) -> None:
        with self._condition:
            self.metrics.extend(metrics or [])
            self.logs.extend(logs or [])
            self._condition.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        """Block until predicate(self) is true, or fail naming what arrived."""
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"not received within {timeout}s; metrics={sorted({m.name for m in self.metrics})} "
                    f"logs={[log.body for log in self.logs][:20]}"
                )

    def latest(self, name: str) -> ReceivedMetric:
        """The last received metric of this name."""
        with self._condition:
            matches = [metric for metric in self.metrics if metric.name == name]
        assert matches, f"no metric {name!r}; received {sorted({m.name for m in self.metrics})}"
        return matches[-1]

"""This process's MeterProvider from OTEL_METRICS_EXPORTER and friends, on the traces' resource (no Django)."""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricReader, MetricsData
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from tracing import telemetry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("flowexec.tracing")

METRICS_EXPORTERS = ("otlp", "console", "prometheus")
# Metrics are opt-in: the embedded dashboard reads the database, and an OTLP default would warn about a
# collector a newcomer does not run.
DEFAULT_METRICS_EXPORTERS = "none"
DEFAULT_PROMETHEUS_HOST = "127.0.0.1"
DEFAULT_PROMETHEUS_PORT = 9464
# Each gunicorn or Celery worker process serves its own registry: the first free port from the configured one.
PROMETHEUS_PORT_ATTEMPTS = 16


@dataclass(frozen=True)
class MetricsState:
    """What configure_metrics did in this process."""

    enabled: bool
    provider: MeterProvider | None
    exporters: tuple[str, ...]
    description: str
    prometheus_address: tuple[str, int] | None = None
    prometheus_server: Any = None

    def close(self, timeout_seconds: float = telemetry.DEFAULT_STOP_TIMEOUT_SECONDS) -> None:
        """Final export and shutdown within timeout_seconds, then stop the prometheus endpoint."""
        provider = self.provider
        if provider is not None:
            telemetry.stop_within(
                lambda: provider.shutdown(timeout_millis=timeout_seconds * 1000), timeout_seconds, "metrics"
            )
        if self.prometheus_server is not None:
            self.prometheus_server.shutdown()
            self.prometheus_server.server_close()


_state: MetricsState | None = None
_lock = threading.Lock()
_stopped = threading.Event()


class WarnOnceMetricExporter(MetricExporter):
    """Wrap a metric exporter with its temporality and aggregation: warn once while failing, never raise."""

    def __init__(self, inner: MetricExporter, target: str) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.reporter = telemetry.FailureReporter("metric", target)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Export via the wrapped exporter; a failure is reported once and dropped."""
        points = sum(
            len(metric.data.data_points)
            for resource in metrics_data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        )

        def export() -> bool:
            return self.inner.export(metrics_data, timeout_millis=timeout_millis) is MetricExportResult.SUCCESS

        ok = self.reporter.run(export, points)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the wrapped exporter down."""
        with self.reporter.quiet():
            self.inner.shutdown(timeout_millis=timeout_millis)


def _otlp_exporter() -> tuple[MetricExporter, str]:
    """The SDK's OTLP metric exporter; it reads OTEL_EXPORTER_OTLP_METRICS_* (endpoint, headers, temporality)."""
    protocol = telemetry.otlp_protocol("metrics")
    timeout = telemetry.otlp_timeout("metrics")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return GrpcExporter(timeout=timeout), telemetry.otlp_target("metrics", protocol)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    return HttpExporter(timeout=timeout), telemetry.otlp_target("metrics", protocol)


def _periodic(exporter: MetricExporter, target: str) -> MetricReader:
    """Push every OTEL_METRIC_EXPORT_INTERVAL ms (the SDK reads it, 60 s by default) from a background thread."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(WarnOnceMetricExporter(exporter, target))


def prometheus_address() -> tuple[str, int]:
    """OTEL_EXPORTER_PROMETHEUS_HOST / _PORT; 127.0.0.1:9464 by default, a bad port warns and falls back."""
    host = telemetry.env("OTEL_EXPORTER_PROMETHEUS_HOST") or DEFAULT_PROMETHEUS_HOST
    raw = telemetry.env("OTEL_EXPORTER_PROMETHEUS_PORT")
    try:
        port = int(raw) if raw else DEFAULT_PROMETHEUS_PORT
        if not 0 <= port <= 65535:
            raise ValueError(raw)
    except ValueError:
        logger.warning("OTEL_EXPORTER_PROMETHEUS_PORT %r is not a port; using %d", raw, DEFAULT_PROMETHEUS_PORT)
        port = DEFAULT_PROMETHEUS_PORT
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve_prometheus(registry: CollectorRegistry) -> tuple[str, Any] | None:
    """Serve /metrics for this process on the first free port from the configured one; None if none is free."""
    from prometheus_client import start_http_server

    host, first = prometheus_address()
    if not _is_loopback(host):
        # The endpoint has no authentication of its own: only a deliberate setting exposes it.
        logger.warning("prometheus endpoint on %s is reachable from the network and has no authentication", host)
    ports = [0] if first == 0 else range(first, min(first + PROMETHEUS_PORT_ATTEMPTS, 65536))
    for port in ports:
        try:
            server, _ = start_http_server(port, addr=host, registry=registry)
        except OSError:
            continue
        return host, server
    logger.warning("prometheus endpoint not started: no free port in %s:%d-%d", host, first, first + len(ports) - 1)
    return None


def shared_resource(service_name: str) -> Resource:
    """The resource of this process's TracerProvider (same service.instance.id), else one built the same way."""
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    if isinstance(resource, Resource):
        return resource
    # Lazy: the resource comes from the tracing configuration only when a MeterProvider is made.
    from tracing.config import ProcessDefaults, tracing_config
    from tracing.provider import build_resource

    return build_resource(tracing_config(os.environ, ProcessDefaults(service_name)))


def meter_provider_for(service_name: str, *, resource: Resource | None = None) -> MetricsState:
    """Build a MeterProvider from the environment without installing it globally (tests use this)."""
    readers: list[MetricReader] = []
    used: list[str] = []
    address = server = None
    for name in telemetry.exporter_names("OTEL_METRICS_EXPORTER", METRICS_EXPORTERS, DEFAULT_METRICS_EXPORTERS):
        if name == "otlp":
            exporter, target = _otlp_exporter()
            readers.append(_periodic(exporter, target))
            used.append(f"otlp({target})")
        elif name == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            readers.append(_periodic(ConsoleMetricExporter(out=sys.stdout), "stdout"))
            used.append("console")
        elif name == "prometheus":
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry()
            if (served := _serve_prometheus(registry)) is None:
                continue
            host, server = served
            address = (host, server.server_port)
            readers.append(PrometheusMetricReader(registry=registry))
            used.append(f"prometheus(http://{address[0]}:{address[1]}/metrics)")
    if not readers:
        return MetricsState(False, None, (), "metrics disabled (OTEL_METRICS_EXPORTER=none)")
    # The SDK reads OTEL_METRICS_EXEMPLAR_FILTER (trace_based by default): histogram points keep trace ids.
    resource = resource or shared_resource(service_name)
    provider = MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)
    service = resource.attributes.get(SERVICE_NAME)
    description = f"metrics enabled: service.name={service} exporters={','.join(used)}"
    names = tuple(name.split("(")[0] for name in used)
    return MetricsState(True, provider, names, description, address, server)


def configure_metrics(service_name: str) -> MetricsState:
    """Set up this process's metrics once (later calls return the first state) and log one line about it."""
    global _state
    with _lock:
        if _state is not None:
            return _state
        current = metrics.get_meter_provider()
        if telemetry.sdk_disabled():
            state = MetricsState(False, None, (), "metrics disabled (OTEL_SDK_DISABLED=true)")
        elif isinstance(current, MeterProvider):
            state = MetricsState(True, current, (), "metrics: keeping the MeterProvider already installed")
        else:
            state = meter_provider_for(service_name)
            if state.provider is not None:
                metrics.set_meter_provider(state.provider)
                atexit.register(shutdown_metrics)
        logger.info("%s", state.description)
        _state = state
        return state


def shutdown_metrics(timeout_seconds: float = telemetry.DEFAULT_STOP_TIMEOUT_SECONDS) -> None:
    """Bounded final export of the provider configure_metrics installed (worker or CLI exit); runs once."""
    state = _state
    if state is None or not state.exporters or _stopped.is_set():
        return
    _stopped.set()
    state.close(timeout_seconds)

"""This process's MeterProvider, built from a MetricsConfig on the traces' resource (no Django)."""

from __future__ import annotations

import atexit
import hmac
import ipaddress
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricReader, MetricsData
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from tracing import telemetry
from tracing.config import MetricsConfig, PrometheusConfig, TracingConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import AggregationTemporality
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("flowexec.tracing")

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


def temporality_for(preference: str) -> dict[type, AggregationTemporality]:
    """OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE as the SDK's OTLP exporter maps it, per instrument."""
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
        UpDownCounter,
    )
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    cumulative, delta = AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA
    monotonic = delta if preference in ("delta", "lowmemory") else cumulative
    return {
        Counter: monotonic,
        UpDownCounter: cumulative,
        Histogram: monotonic,
        ObservableCounter: delta if preference == "delta" else cumulative,
        ObservableUpDownCounter: cumulative,
        ObservableGauge: cumulative,
    }


def _otlp_exporter(config: MetricsConfig) -> MetricExporter:
    """The SDK's OTLP metric exporter, given every setting so it reads nothing from the environment."""
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, ExponentialBucketHistogramAggregation

    histograms = (
        ExponentialBucketHistogramAggregation()
        if config.histogram_aggregation == "base2_exponential_bucket_histogram"
        else ExplicitBucketHistogramAggregation()
    )
    settings = {
        **telemetry.otlp_exporter_settings(config.otlp),
        "preferred_temporality": temporality_for(config.temporality),
        "preferred_aggregation": {Histogram: histograms},
    }
    if config.otlp.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return GrpcExporter(**settings)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    return HttpExporter(**settings)


def _periodic(exporter: MetricExporter, target: str, config: MetricsConfig) -> MetricReader:
    """Push every export interval from a background thread, each export bounded by the export timeout."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(
        WarnOnceMetricExporter(exporter, target),
        export_interval_millis=config.export_interval_millis,
        export_timeout_millis=config.export_timeout_millis,
    )


def _exemplar_filter(name: str) -> Any:
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter, TraceBasedExemplarFilter

    filters = {"always_on": AlwaysOnExemplarFilter, "always_off": AlwaysOffExemplarFilter}
    return filters.get(name, TraceBasedExemplarFilter)()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrape_app(app: Callable[..., Iterable[bytes]], path: str, token: str) -> Callable[..., Iterable[bytes]]:
    """Serve app at path only, and, with a token, only to `Authorization: Bearer <token>` (401 otherwise)."""
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") != path:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if token and not hmac.compare_digest(given, expected):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')]
            )
            return [b"unauthorized\n"]
        return app(environ, start_response)

    return guarded


class _ScrapeServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a stderr line each."""


def _serve_prometheus(registry: CollectorRegistry, config: PrometheusConfig) -> WSGIServer | None:
    """Serve the scrape path for this process on the first free port from the configured one; None if not."""
    from prometheus_client import make_wsgi_app

    if not config.token and not _is_loopback(config.host):
        # Without a token anyone on the network could read the metrics: only loopback goes without one.
        logger.warning("prometheus endpoint not started: %s is not a loopback address and FLOWEXEC_PROMETHEUS_TOKEN "
                       "is not set", config.host)
        return None
    app = scrape_app(make_wsgi_app(registry), config.path, config.token)
    server_class = type("ScrapeServer", (_ScrapeServer,), {"address_family": _family(config.host)})
    first = config.port
    ports = [0] if first == 0 else range(first, min(first + PROMETHEUS_PORT_ATTEMPTS, 65536))
    for port in ports:
        try:
            server = make_server(config.host, port, app, server_class=server_class, handler_class=_QuietHandler)
        except OSError:
            continue
        threading.Thread(target=server.serve_forever, name="flowexec-prometheus", daemon=True).start()
        return server
    logger.warning("prometheus endpoint not started: no free port in %s:%d-%d", config.host, first,
                   first + len(ports) - 1)
    return None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def shared_resource(fallback: TracingConfig) -> Resource:
    """The resource of this process's TracerProvider (same service.instance.id), else one built from fallback."""
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    if isinstance(resource, Resource):
        return resource
    # Lazy: tracing.provider pulls in the whole trace SDK set-up, needed here only without a TracerProvider.
    from tracing.provider import build_resource

    return build_resource(fallback)


def meter_provider_for(config: MetricsConfig, resource: Resource) -> MetricsState:
    """Build a MeterProvider from config without installing it globally (tests use this)."""
    readers: list[MetricReader] = []
    used: list[str] = []
    address = server = None
    for name in config.exporters:
        if name == "otlp":
            readers.append(_periodic(_otlp_exporter(config), config.otlp.target, config))
            used.append(f"otlp({config.otlp.target})")
        elif name == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            readers.append(_periodic(ConsoleMetricExporter(out=sys.stdout), "stdout", config))
            used.append("console")
        elif name == "prometheus":
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry()
            if (server := _serve_prometheus(registry, config.prometheus)) is None:
                continue
            address = (config.prometheus.host, server.server_port)
            readers.append(PrometheusMetricReader(registry=registry))
            auth = "bearer token" if config.prometheus.token else "no auth"
            used.append(f"prometheus(http://{address[0]}:{address[1]}{config.prometheus.path}, {auth})")
    if not readers:
        return MetricsState(False, None, (), "metrics disabled (OTEL_METRICS_EXPORTER=none)")
    provider = MeterProvider(
        metric_readers=readers,
        resource=resource,
        exemplar_filter=_exemplar_filter(config.exemplar_filter),
        shutdown_on_exit=False,
    )
    service = resource.attributes.get(SERVICE_NAME)
    description = f"metrics enabled: service.name={service} exporters={','.join(used)}"
    names = tuple(name.split("(")[0] for name in used)
    return MetricsState(True, provider, names, description, address, server)


def configure_metrics(config: MetricsConfig, resource: Resource) -> MetricsState:
    """Set up this process's metrics once (later calls return the first state) and log one line about it."""
    global _state
    with _lock:
        if _state is not None:
            return _state
        current = metrics.get_meter_provider()
        if config.disabled:
            state = MetricsState(False, None, (), "metrics disabled (OTEL_SDK_DISABLED=true)")
        elif isinstance(current, MeterProvider):
            state = MetricsState(True, current, (), "metrics: keeping the MeterProvider already installed")
        else:
            state = meter_provider_for(config, resource)
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

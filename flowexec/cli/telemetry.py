"""The CLI's tracing: provider set-up, where the API token may go, the root span (continuing the environment's).

The one module of the CLI that knows tracing/provider.py; everything else uses the OpenTelemetry API.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flowexec import __version__
from flowexec.cli.carriers import environment_context
from flowexec.cli.config import Settings
from tracing import attributes as attrs

if TYPE_CHECKING:
    import urllib3
    from opentelemetry.trace import Span

    from tracing.config import OtlpConfig, TracingConfig
    from tracing.exporters import ExporterSpec

logger = logging.getLogger("flowexec.cli")

# Upper bound on the final span flush: a dead trace backend may cost at most this long.
FLUSH_TIMEOUT_SECONDS = 1.5
# The CLI's OTLP export budget unless OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT says otherwise. The export is one
# POST at exit (flowexec.cli.otlp, no retries), to the service's own /v1/traces over the connection the API
# calls kept open by default: one round trip. A backend that accepts and never answers costs at most this.
OTLP_TIMEOUT_SECONDS = 0.4
URLLIB3_INSTRUMENTATION = "opentelemetry.instrumentation.urllib3"
DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def token_allowed(otlp: OtlpConfig, service_url: str) -> bool:
    """Whether the API token may ride on this OTLP export: only to the service's own /v1/traces over HTTP.

    The token authenticates to flowexec; any other endpoint (a third-party Collector) must never see it,
    and gRPC never gets it (the service has no gRPC receiver).
    """
    own = f"{urlsplit(service_url).path.rstrip('/')}/v1/traces"
    return (
        otlp.protocol == "http/protobuf"
        and _origin(otlp.endpoint) == _origin(service_url)
        and urlsplit(otlp.endpoint).path.rstrip("/") == own
    )


def cli_tracing_config(settings: Settings, environ: Mapping[str, str]) -> TracingConfig:
    """OTLP to the service's /v1/traces by default (OTEL_* override); the token only where token_allowed."""
    # Lazy: the tracing configuration imports the SDK, which only traced commands pay for.
    from tracing.config import ProcessDefaults, tracing_config

    defaults = ProcessDefaults(
        settings.service_name,
        exporters=("otlp",),
        otlp_endpoint=f"{settings.url}/v1/traces",
        otlp_timeout=OTLP_TIMEOUT_SECONDS,
    )
    config = tracing_config(environ, defaults)
    # Headers from OTEL_EXPORTER_OTLP_*HEADERS are the operator's choice and stay as they are.
    if settings.token and not config.otlp.headers and token_allowed(config.otlp, settings.url):
        headers = {"Authorization": f"Token {settings.token}"}
        config = replace(config, otlp=replace(config.otlp, headers=headers))
    elif settings.token and "otlp" in config.exporters:
        own = f"{settings.url}/v1/traces"
        logger.info("OTLP export to %s goes without the API token (not %s)", config.otlp.endpoint, own)
    return config


def otlp_exporter(config: TracingConfig, *, user_agent: str, pool: urllib3.PoolManager) -> ExporterSpec:
    """OTLP/HTTP through flowexec.cli.otlp on the API client's connections; gRPC through the SDK's exporter."""
    # Lazy: as the SDK, the exporters load only in a traced command.
    from tracing import exporters

    otlp = config.otlp
    if otlp.protocol != "http/protobuf":
        return exporters.otlp_exporter(config)
    # Lazy: as above.
    from flowexec.cli.otlp import OtlpHttpSpanExporter

    exporter = OtlpHttpSpanExporter(
        otlp.endpoint,
        headers=otlp.headers,
        timeout=otlp.timeout,
        compression=otlp.compression,
        user_agent=user_agent,
        pool=pool,
    )
    return exporters.ExporterSpec("otlp", exporter, True, otlp.target)


@dataclass
class Tracing:
    """The CLI's tracer provider for one command; stop() flushes it within a bounded time."""

    enabled: bool
    metrics: bool = False

    @classmethod
    def start(cls, settings: Settings, pool: urllib3.PoolManager) -> Tracing:
        """Configure the provider (and a MeterProvider when OTEL_METRICS_EXPORTER asks); spans export over `pool`.

        The API client makes its own CLIENT spans (http_client_span); only when metrics are asked for is urllib3
        instrumented instead, for its http.client.* metrics (the instrumentation then makes the client spans).
        """
        # Lazy: `--help` and usage errors never read a tracing configuration.
        from tracing.config import metrics_config

        config = cli_tracing_config(settings, os.environ)
        if config.disabled:
            # Lazy: propagation needs no SDK, and with OTEL_SDK_DISABLED nothing here imports it (~90 M
            # instructions of a run, callgrind); trace context and baggage still travel.
            from tracing.propagation import install_propagators

            install_propagators(config)
            logger.info("tracing disabled (OTEL_SDK_DISABLED=true)")
            return cls(enabled=False)
        # Lazy: only a traced command imports the SDK.
        from tracing.provider import configure_tracing

        def cli_otlp(config: TracingConfig) -> ExporterSpec:
            return otlp_exporter(config, user_agent=settings.user_agent, pool=pool)

        state = configure_tracing(config, {"otlp": cli_otlp})
        metrics_settings = metrics_config(os.environ)
        metrics = bool(metrics_settings.exporters) and not metrics_settings.disabled
        if metrics:
            # Lazy: the metrics SDK loads only when OTEL_METRICS_EXPORTER asks for it.
            from tracing.metrics import configure_metrics, shared_resource

            configure_metrics(metrics_settings, shared_resource(config))
        if metrics and state.enabled:
            # Lazy: the instrumentation (wrapt, packaging, asyncio: ~25 ms) only when its metrics are wanted.
            from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

            instrumentor = URLLib3Instrumentor()
            # opentelemetry-instrument (or an earlier command in this process) may have done it already.
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
        return cls(enabled=state.enabled, metrics=metrics)

    def stop(self) -> None:
        """Flush and shut down, giving up after FLUSH_TIMEOUT_SECONDS (a dead backend must not hang us)."""
        if self.metrics:
            # Lazy: as above.
            from tracing.metrics import shutdown_metrics

            shutdown_metrics(timeout_seconds=FLUSH_TIMEOUT_SECONDS)
        if self.enabled:
            # Lazy: as above, only a traced command imports the SDK.
            from tracing.provider import flush_and_shutdown

            flush_and_shutdown(timeout_seconds=FLUSH_TIMEOUT_SECONDS)


@contextmanager
def command_span(command: str, settings: Settings, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """Root span `flowexec {command}` (child of TRACEPARENT if set) with baggage request_id and client."""
    from opentelemetry import baggage, context, trace

    ctx = baggage.set_baggage(attrs.REQUEST_ID, settings.request_id, environment_context(os.environ))
    ctx = baggage.set_baggage(attrs.CLIENT, settings.client, ctx)
    token = context.attach(ctx)
    try:
        tracer = trace.get_tracer(attrs.TRACER_NAME, __version__)
        span_attributes = {attrs.REQUEST_ID: settings.request_id, attrs.CLIENT: settings.client, **attributes}
        with tracer.start_as_current_span(attrs.CLI_SPAN.format(command=command), attributes=span_attributes) as span:
            yield span
    finally:
        context.detach(token)


def mark_failed(span: Span, message: str) -> None:
    """Set ERROR status on the CLI span for outcomes that are not exceptions."""
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, message))


def _urllib3_instrumented() -> bool:
    """Whether the urllib3 instrumentation is on in this process (opentelemetry-instrument, the service, metrics)."""
    module = sys.modules.get(URLLIB3_INSTRUMENTATION)  # not imported: not instrumented, and no cost to ask
    return module is not None and module.URLLib3Instrumentor().is_instrumented_by_opentelemetry


class ClientSpan:
    """What an API call records on its CLIENT span; every method does nothing without one."""

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def answered(self, status: int) -> None:
        """The response status; 4xx and 5xx are errors of a client span (semconv: error.type is the code)."""
        if self.span is None:
            return
        # Lazy: `--help` and usage errors import no OpenTelemetry at all.
        from opentelemetry.semconv.attributes import error_attributes, http_attributes
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, status)
        if status >= 400:
            self.span.set_attribute(error_attributes.ERROR_TYPE, str(status))
            self.span.set_status(Status(StatusCode.ERROR))

    def failed(self, exc: BaseException) -> None:
        """No response: the exception, its class as error.type, status ERROR."""
        if self.span is None:
            return
        # Lazy: as above.
        from opentelemetry.semconv.attributes import error_attributes
        from opentelemetry.trace import Status, StatusCode

        self.span.record_exception(exc)
        self.span.set_attribute(error_attributes.ERROR_TYPE, type(exc).__qualname__)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


@contextmanager
def http_client_span(method: str, url: str) -> Iterator[ClientSpan]:
    """The CLIENT span of one API call, current while it runs, as the urllib3 instrumentation would make it.

    Why not that instrumentation: importing it cost a CLI run ~25-50 ms (wrapt, packaging, asyncio; measured with
    `python -X importtime`), and the API client is the CLI's only HTTP call site. Same span name (the method) and
    stable HTTP semantic conventions; url.full is redacted by tracing.provider.SpanStartProcessor as before.
    Where urllib3 is instrumented anyway, its span is the client span and this makes none.
    """
    if _urllib3_instrumented():
        yield ClientSpan(None)
        return
    # Lazy: as above.
    from opentelemetry import trace
    from opentelemetry.semconv.attributes import http_attributes, server_attributes, url_attributes

    _, host, port = _origin(url)
    attributes = {
        http_attributes.HTTP_REQUEST_METHOD: method,
        url_attributes.URL_FULL: url,
        server_attributes.SERVER_ADDRESS: host,
    }
    if port is not None:
        attributes[server_attributes.SERVER_PORT] = port
    tracer = trace.get_tracer(attrs.TRACER_NAME, __version__)
    with tracer.start_as_current_span(
        method, kind=trace.SpanKind.CLIENT, attributes=attributes, record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield ClientSpan(span)

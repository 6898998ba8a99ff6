"""The CLI's tracing: provider set-up, where the API token may go, the root span (continuing the environment's).

The one module of the CLI that knows tracing/provider.py; everything else uses the OpenTelemetry API.
"""

from __future__ import annotations

import logging
import os
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
    from opentelemetry.trace import Span

    from tracing.config import OtlpConfig, TracingConfig

logger = logging.getLogger("flowexec.cli")

# Upper bound on the final span flush: a dead trace backend may cost at most this long.
FLUSH_TIMEOUT_SECONDS = 1.5
# The CLI's OTLP export budget unless OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT says otherwise: below the SDK's
# first retry backoff (1 s +-20%), so a refused connection fails at once and a silent backend within 0.75 s.
OTLP_TIMEOUT_SECONDS = 0.75
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


@dataclass
class Tracing:
    """The CLI's tracer provider for one command; stop() flushes it within a bounded time."""

    enabled: bool
    metrics: bool = False

    @classmethod
    def start(cls, settings: Settings) -> Tracing:
        """Configure the provider (and a MeterProvider when OTEL_METRICS_EXPORTER asks) and instrument urllib3."""
        # Lazy: only a traced command imports the SDK.
        from tracing.config import metrics_config
        from tracing.provider import configure_tracing

        config = cli_tracing_config(settings, os.environ)
        state = configure_tracing(config)
        metrics_settings = metrics_config(os.environ)
        metrics = bool(metrics_settings.exporters) and not metrics_settings.disabled
        if metrics:
            # Lazy: the metrics SDK loads only when OTEL_METRICS_EXPORTER asks for it.
            from tracing.metrics import configure_metrics, shared_resource

            configure_metrics(metrics_settings, shared_resource(config))
        if state.enabled:
            from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

            urllib3 = URLLib3Instrumentor()
            # opentelemetry-instrument (or an earlier command in this process) may have done it already.
            if not urllib3.is_instrumented_by_opentelemetry:
                urllib3.instrument()
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

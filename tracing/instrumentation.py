"""Tracing for the Django processes: provider, exporters and the maintained instrumentations.

Called once per process, after Django's settings are configured: from flowexec/wsgi.py (each
gunicorn worker and runserver import it after fork), from gunicorn's post_fork hook, from the
management commands that run flows, and from Celery's worker_process_init.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from tracing import conf, exporters, redaction
from tracing.config import ProcessDefaults, TracingConfig, logs_config, metrics_config, tracing_config
from tracing.provider import TracingState, configure_tracing

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

# Paths never traced: health probes would flood the store and say nothing, and tracing the OTLP
# receiver would make every export produce more spans to export.
EXCLUDED_URLS = "healthz,static/,v1/traces"

_lock = threading.Lock()
_state: TracingState | None = None


def django_process_config(service_name: str) -> TracingConfig:
    """This Django process's tracing configuration: the environment over the service's defaults."""
    defaults = ProcessDefaults(
        service_name, exporters=("store",), baggage_keys=tuple(conf.get("FLOWEXEC_BAGGAGE_ATTRIBUTE_KEYS"))
    )
    return tracing_config(os.environ, defaults)


def instrument_django_process(service_name: str = "flowexec-service") -> TracingState:
    """Set up this process's TracerProvider and instrument Django, urllib3 and (optionally) the DB."""
    global _state
    with _lock:
        if _state is not None:
            return _state
        # Lazy: the store exporter imports the span model, which needs Django set up.
        from tracing.store.exporter import store_exporter

        exporters.register_exporter("store", store_exporter)
        config = django_process_config(service_name)
        _state = configure_tracing(config)
        _configure_metrics_and_logs(config, store="store" in _state.exporters)
        _instrument_libraries(database=bool(conf.get("FLOWEXEC_TRACE_DATABASE")))
        return _state


def _configure_metrics_and_logs(tracing: TracingConfig, *, store: bool) -> None:
    """MeterProvider and log export on the traces' resource, before the instrumentations look for a meter.

    With the embedded span store, the log lines logged inside a trace go to the store too.
    """
    # Lazy: the metrics and logs SDK parts load only when this process configures them.
    from tracing.log_export import configure_logs
    from tracing.metrics import configure_metrics, shared_resource

    resource = shared_resource(tracing)
    configure_metrics(metrics_config(os.environ), resource)
    configure_logs(logs_config(os.environ), resource)
    if store:
        # Lazy: the log store imports the log model, which needs Django set up.
        from tracing.log_store import install_log_store

        install_log_store()


def _never_capture_secret_headers() -> None:
    """Make the instrumentations' own header capture (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*) redact ours too."""
    from opentelemetry.util.http import OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS as SANITIZE

    fields = [field.strip() for field in os.environ.get(SANITIZE, "").split(",") if field.strip()]
    patterns = redaction.header_patterns(conf.get("FLOWEXEC_REDACT_KEYS"))
    os.environ[SANITIZE] = ",".join(dict.fromkeys([*fields, *patterns]))


def _guard_paths_before_the_django_middleware() -> None:
    from django.conf import settings

    guard = "tracing.safe_paths.LatinPathGuardMiddleware"
    if guard not in settings.MIDDLEWARE:
        settings.MIDDLEWARE.insert(0, guard)


def _instrument(instrumentor: BaseInstrumentor, **options: Any) -> None:
    """Instrument unless already done (by opentelemetry-instrument, or an earlier call): no warning twice."""
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(**options)


def _instrument_libraries(*, database: bool) -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    _never_capture_secret_headers()
    _instrument(DjangoInstrumentor(), excluded_urls=EXCLUDED_URLS)
    _guard_paths_before_the_django_middleware()
    _instrument(URLLib3Instrumentor())
    # Threads and thread pools (the async pool, threads a python step starts) inherit the trace.
    _instrument(ThreadingInstrumentor())
    if database:
        _instrument_database()
    if _broker_configured():
        _instrument_celery()


class ChildSpansOnly(trace.TracerProvider):
    """Tracers that start a span only inside another one (query spans belong to a request, task or execution).

    A heartbeat or retention sweep queries outside any span; traced as is, each query would be a one-span trace.
    """

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        """The global provider's tracer, wrapped."""
        return _ChildSpanTracer(trace.get_tracer_provider().get_tracer(*args, **kwargs))


class _ChildSpanTracer(trace.Tracer):
    def __init__(self, inner: trace.Tracer) -> None:
        self._inner = inner

    def start_span(self, name: str, context: Context | None = None, *args: Any, **kwargs: Any) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._inner.start_span(name, context, *args, **kwargs)

    @contextmanager
    def start_as_current_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        if not trace.get_current_span(context).get_span_context().is_valid:
            yield trace.INVALID_SPAN
            return
        with self._inner.start_as_current_span(name, context, *args, **kwargs) as span:
            yield span


def _instrument_database() -> None:
    from django.db import connections

    vendor = connections["default"].vendor
    if vendor == "sqlite":
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        _instrument(SQLite3Instrumentor(), tracer_provider=ChildSpansOnly())
    elif vendor == "postgresql":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        _instrument(PsycopgInstrumentor(), tracer_provider=ChildSpansOnly(), enable_commenter=False)


def _broker_configured() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "FLOWEXEC_BROKER_URL", ""))


def _instrument_celery() -> None:
    """Publish spans in the service, run spans in workers; the trace context travels in the task headers."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    _instrument(CeleryInstrumentor())

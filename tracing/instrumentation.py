"""Tracing for the Django processes: provider, exporters and the maintained instrumentations.

Called once per process, after Django's settings are configured: from flowexec/wsgi.py (each
gunicorn worker and runserver import it after fork), from gunicorn's post_fork hook, from the
management commands that run flows, and from Celery's worker_process_init.
"""

from __future__ import annotations

import os
import threading

from tracing import conf, exporters
from tracing.config import ProcessDefaults, TracingConfig, tracing_config
from tracing.provider import TracingState, configure_tracing
from tracing.redaction import active_mask, redact_url

_lock = threading.Lock()
_state: TracingState | None = None

# Paths never traced: health probes would flood the store and say nothing, and tracing the OTLP
# receiver would make every export produce more spans to export.
EXCLUDED_URLS = "healthz,static/,v1/traces"


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
        from tracing.store.exporter import store_exporter

        exporters.register_exporter("store", store_exporter)
        _state = configure_tracing(django_process_config(service_name))
        _configure_metrics_and_logs(service_name, store="store" in _state.exporters)
        _instrument_libraries(database=bool(conf.get("FLOWEXEC_TRACE_DATABASE")))
        return _state


def _configure_metrics_and_logs(service_name: str, *, store: bool) -> None:
    """MeterProvider and log export on the traces' resource, before the instrumentations look for a meter.

    With the embedded span store, the log lines logged inside a trace go to the store too.
    """
    from tracing.log_export import configure_logs
    from tracing.metrics import configure_metrics

    configure_metrics(service_name)
    configure_logs(service_name)
    if store:
        from tracing.log_store import install_log_store

        install_log_store()


def _never_capture_secret_headers() -> None:
    """Make the instrumentations' own header capture (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*) redact ours too."""
    from opentelemetry.util.http import OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS as SANITIZE

    fields = [field.strip() for field in os.environ.get(SANITIZE, "").split(",") if field.strip()]
    os.environ[SANITIZE] = ",".join(dict.fromkeys([*fields, *sorted(conf.NEVER_RECORDED_HEADERS)]))


def _client_url(url: str) -> str:
    """A client span's URL: no userinfo, no sensitive query values, the running execution's secrets masked."""
    return active_mask(redact_url(url))


def _instrument_libraries(*, database: bool) -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    _never_capture_secret_headers()
    DjangoInstrumentor().instrument(excluded_urls=EXCLUDED_URLS)
    URLLib3Instrumentor().instrument(url_filter=_client_url)
    # Threads and thread pools (the async pool, threads a python step starts) inherit the trace.
    ThreadingInstrumentor().instrument()
    if database:
        _instrument_database()
    if _broker_configured():
        _instrument_celery()


def _instrument_database() -> None:
    from django.db import connections

    vendor = connections["default"].vendor
    if vendor == "sqlite":
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        SQLite3Instrumentor().instrument()
    elif vendor == "postgresql":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().instrument(enable_commenter=False)


def _broker_configured() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "FLOWEXEC_BROKER_URL", ""))


def _instrument_celery() -> None:
    """Publish spans in the service, run spans in workers; the trace context travels in the task headers."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()

"""Tracing settings: one DEFAULTS dict, read at call time so tests and settings overrides apply."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Request header -> span attribute on the server span.
    "FLOWEXEC_HEADER_ATTRIBUTES": {"X-Request-ID": "request_id", "User-Agent": "user_agent.original"},
    # W3C baggage keys copied onto the server span and every span started under it.
    "FLOWEXEC_BAGGAGE_ATTRIBUTE_KEYS": ["request_id", "client"],
    # Longest header value recorded as an attribute (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT also caps it).
    "FLOWEXEC_HEADER_VALUE_LIMIT": 256,
    # Step inputs/outputs as span events (off by default, as OTel's content capture: they may carry personal
    # data no redaction key names); keys whose values are redacted; byte cap per event.
    "FLOWEXEC_RECORD_CONTENT": False,
    "FLOWEXEC_REDACT_KEYS": [],
    "FLOWEXEC_CONTENT_MAX_BYTES": 4096,
    # ORM query spans (sqlite3 / psycopg instrumentation).
    "FLOWEXEC_TRACE_DATABASE": False,
    # External trace UI link, e.g. http://localhost:16686/trace/{trace_id}.
    "FLOWEXEC_TRACE_URL_TEMPLATE": "",
    # Embedded span store and its OTLP receiver.
    "FLOWEXEC_OTLP_RECEIVER_AUTH": True,
    "FLOWEXEC_OTLP_MAX_BYTES": 8 * 1024 * 1024,
    "FLOWEXEC_SPAN_RETENTION_DAYS": 7,
    "FLOWEXEC_SPAN_RETENTION_MAX_ROWS": 200_000,
    "FLOWEXEC_SPAN_RETENTION_MAX_BYTES": 512 * 1024 * 1024,
}

def get(name: str) -> Any:
    """Return a tracing setting from Django settings, falling back to DEFAULTS."""
    from django.conf import settings

    return getattr(settings, name, DEFAULTS[name])

"""Execution settings: one DEFAULTS dict, read at call time so tests and settings overrides apply."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Hosts `http` steps may call (redirect targets are checked too).
    "FLOWEXEC_HTTP_ALLOWED_HOSTS": [],
    # Extra `python` step functions, as dotted paths; the built-ins are always there.
    "FLOWEXEC_PYTHON_FUNCTIONS": [],
    # Threads running one execution's independent steps.
    "FLOWEXEC_STEP_WORKERS": 4,
    # Threads running async ("wait": false) executions in-process when no broker is set.
    "FLOWEXEC_ASYNC_WORKERS": 4,
    # Celery broker; unset keeps async executions in-process.
    "FLOWEXEC_BROKER_URL": "",
    # Deepest nesting of objects/arrays accepted in a request body (flows, executions).
    "FLOWEXEC_MAX_BODY_DEPTH": 100,
    # Largest accepted flow definition, in bytes of JSON.
    "FLOWEXEC_MAX_DEFINITION_BYTES": 256 * 1024,
    # Deepest chain of `flow` sub-executions.
    "FLOWEXEC_MAX_FLOW_DEPTH": 5,
    # Step timeout when a step sets none, in seconds.
    "FLOWEXEC_DEFAULT_STEP_TIMEOUT": 60.0,
    # A running execution whose runner has not reported for this long is failed as interrupted.
    "FLOWEXEC_STALE_AFTER": 60.0,
}


def get(name: str) -> Any:
    """Return an executions setting from Django settings, falling back to DEFAULTS."""
    return getattr(settings, name, DEFAULTS[name])

"""System checks for the FLOWEXEC_* settings: a bad value stops the process at start-up, naming it.

Registered in ExecutionsConfig.ready(); `manage.py` commands run them, and flowexec.bootstrap runs
them in every service and worker process (WSGI and Celery start without Django's checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.checks import Error, register

from executions import conf, engine
from tracing import conf as tracing_conf

TAG = "flowexec"


def _error(name: str, message: str, number: int) -> Error:
    return Error(f"{name}: {message}", id=f"flowexec.E{number:03d}")


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, str) and item for item in value)


@register(TAG)
def check_execution_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Numbers are positive, lists hold strings, the python step functions import."""
    errors: list[Error] = []
    for name in conf.POSITIVE_SECONDS:
        value = conf.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(_error(name, f"must be a positive number of seconds, got {value!r}", 1))
    for name in conf.POSITIVE_INTEGERS:
        value = conf.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append(_error(name, f"must be a positive integer, got {value!r}", 2))
    for name in ("FLOWEXEC_HTTP_ALLOWED_HOSTS", "FLOWEXEC_PYTHON_FUNCTIONS"):
        if not _is_string_list(conf.get(name)) and conf.get(name) != []:
            errors.append(_error(name, f"must be a list of strings, got {conf.get(name)!r}", 3))
    allowed = conf.get("FLOWEXEC_HTTP_ALLOWED_HOSTS")
    if _is_string_list(allowed):
        try:
            engine.parse_allowlist(frozenset(allowed))
        except ValueError as exc:
            errors.append(_error("FLOWEXEC_HTTP_ALLOWED_HOSTS", str(exc), 6))
    functions = conf.get("FLOWEXEC_PYTHON_FUNCTIONS")
    if _is_string_list(functions):
        try:
            engine.load_functions(functions)
        except ValueError as exc:
            errors.append(_error("FLOWEXEC_PYTHON_FUNCTIONS", str(exc), 4))
    broker = conf.get("FLOWEXEC_BROKER_URL")
    if not isinstance(broker, str) or (broker and "://" not in broker):
        errors.append(_error("FLOWEXEC_BROKER_URL", f"must be a URL like redis://host:6379/0, got {broker!r}", 5))
    return errors


@register(TAG)
def check_tracing_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Header and baggage mappings are strings, limits positive, the trace URL template has {trace_id}."""
    errors: list[Error] = []
    headers = tracing_conf.get("FLOWEXEC_HEADER_ATTRIBUTES")
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in headers.items()
    ):
        errors.append(_error("FLOWEXEC_HEADER_ATTRIBUTES", f"must map header names to attribute names, got {headers!r}",
                             10))
    for name in ("FLOWEXEC_BAGGAGE_ATTRIBUTE_KEYS", "FLOWEXEC_REDACT_KEYS"):
        value = tracing_conf.get(name)
        if not _is_string_list(value) and value != []:
            errors.append(_error(name, f"must be a list of strings, got {value!r}", 11))
    for name in ("FLOWEXEC_HEADER_VALUE_LIMIT", "FLOWEXEC_CONTENT_MAX_BYTES", "FLOWEXEC_OTLP_MAX_BYTES",
                 "FLOWEXEC_SPAN_RETENTION_DAYS", "FLOWEXEC_SPAN_RETENTION_MAX_ROWS"):
        value = tracing_conf.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(_error(name, f"must be a positive number, got {value!r}", 12))
    template = tracing_conf.get("FLOWEXEC_TRACE_URL_TEMPLATE")
    if not isinstance(template, str) or (template and "{trace_id}" not in template):
        errors.append(_error("FLOWEXEC_TRACE_URL_TEMPLATE", f"must contain {{trace_id}}, got {template!r}", 13))
    return errors

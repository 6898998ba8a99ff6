"""Who may read or add to which traces: rules of the app that owns the traces' executions, registered at start-up.

Tracing imports nothing of that app (imports flow one way); its AppConfig.ready() registers the rules here.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured

INGEST_SPANS = "tracing.ingest_spans"


class TraceAccess(Protocol):
    """The visibility rules the trace API and the OTLP receiver apply."""

    def visible_trace_ids(self, user: Any) -> Any: ...

    def trace_visible(self, *, trace_id: str, user: Any) -> bool: ...

    def traces_closed_to(self, *, trace_ids: set[str], user: Any) -> set[str]: ...


_access: TraceAccess | None = None


def trace_access_register(access: TraceAccess) -> None:
    """Install the visibility rules (called once, from an AppConfig.ready())."""
    global _access
    _access = access


def trace_access() -> TraceAccess:
    """The registered rules; a missing registration is a configuration error, never "everything is visible"."""
    if _access is None:
        raise ImproperlyConfigured("no trace access rules registered (is the executions app installed?)")
    return _access

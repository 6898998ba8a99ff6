"""OpenTelemetry "Environment Variables as Context Propagation Carriers": TRACEPARENT, TRACESTATE, BAGGAGE.

A parent process (a CI job, a traced script) hands its context to the CLI and `manage.py runflow` this way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tracing import attributes as attrs

if TYPE_CHECKING:
    from opentelemetry.context import Context

# The variable that carries each header.
ENVIRONMENT_CARRIERS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}


def environment_context(environ: Mapping[str, str]) -> Context:
    """The trace context and baggage in TRACEPARENT/TRACESTATE/BAGGAGE, through the configured propagators.

    So invalid values are ignored exactly like invalid headers.
    """
    from opentelemetry import propagate

    carrier = {header: environ[name] for header, name in ENVIRONMENT_CARRIERS.items() if environ.get(name)}
    return propagate.extract(carrier)


def environment_request_id(environ: Mapping[str, str]) -> str | None:
    """The caller's request id from BAGGAGE (`request_id=...`) if it is one the service accepts, else None."""
    if not environ.get("BAGGAGE"):
        return None
    from opentelemetry import baggage
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    value = baggage.get_baggage(attrs.REQUEST_ID, W3CBaggagePropagator().extract({"baggage": environ["BAGGAGE"]}))
    return value if isinstance(value, str) and re.fullmatch(attrs.REQUEST_ID_PATTERN, value) else None

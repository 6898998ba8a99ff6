"""URLs in spans follow the OTel HTTP semantic conventions: no userinfo, no sensitive query values.

The contrib instrumentations record the request's URL (server: url.query or http.target; client: url.full or
http.url) and remove only some of it. `redact_span_urls` rewrites those attributes with the one redaction rule
of tracing/redaction.py (userinfo dropped, values of `token`, `password`, `sig`, ... and FLOWEXEC_REDACT_KEYS
replaced by ``REDACTED``). tracing.provider.SpanStartProcessor, first on every provider flowexec builds or
adopts, applies it to what a span starts with (client spans, also when opentelemetry-instrument instrumented
urllib3); the Django instrumentation sets its attributes after the start, so tracing.middleware applies it to
the server span.
"""

from __future__ import annotations

from opentelemetry import trace

from tracing.redaction import active_mask, redact_url

# Attributes holding a URL or a path with its query (stable names and the ones before them).
URL_ATTRIBUTES = ("url.full", "http.url", "http.target")
QUERY_ATTRIBUTE = "url.query"
_URL_KEYS = frozenset((*URL_ATTRIBUTES, QUERY_ATTRIBUTE))


def redact_span_urls(span: trace.Span) -> None:
    """Rewrite url.full / url.query / http.url / http.target in place when they carry something sensitive."""
    attributes = getattr(span, "attributes", None) or {}
    # One pass over the keys: most spans carry none of these, and a miss through the SDK's attribute
    # mapping costs a raised KeyError per name.
    for key in [key for key in attributes if key in _URL_KEYS]:
        value = attributes[key]
        if not isinstance(value, str):
            continue
        if key == QUERY_ATTRIBUTE:
            # The running execution's secret values are masked too (a step's URL may embed one).
            redacted = active_mask(redact_url(f"?{value}")).partition("?")[2] if value else value
        else:
            redacted = active_mask(redact_url(value))
        if redacted != value:
            span.set_attribute(key, redacted)

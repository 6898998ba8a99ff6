"""Request headers -> server span attributes, and the request id and trace handed back to the caller."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from opentelemetry import baggage, context, trace

from tracing import attributes as keys
from tracing import conf, redaction
from tracing.propagation import is_request_id, traceresponse_header
from tracing.span_urls import redact_span_urls

# Set by the contrib instrumentation from the raw header before we run (stable and old semantic conventions).
_USER_AGENT_ATTRIBUTES = (keys.USER_AGENT, "http.user_agent")


class HeaderAttributesMiddleware:
    """Copy configured request headers onto the current server span; give every request chain one id.

    Placed after the OpenTelemetry Django middleware, so the current span is the server span.
    Never fails a request: a malformed header is ignored or replaced, never raised on.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = self.request_id(request)
        span = trace.get_current_span()
        span_context = span.get_span_context()
        # Ours only if this process started it: with OTEL_SDK_DISABLED the "current span" is the caller's.
        own = span_context.is_valid and not span_context.is_remote
        # For log records emitted after the span has ended (django.request's 4xx/5xx warnings).
        request.span_context = span_context if own else trace.INVALID_SPAN_CONTEXT
        if span.is_recording():
            redact_span_urls(span)
            self.record_headers(request, span)
        # Every span under this one, and every call made from here, carries the chain's id (one rule).
        token = context.attach(baggage.set_baggage(keys.REQUEST_ID, request.request_id))
        try:
            response = self.get_response(request)
        finally:
            context.detach(token)
        response[keys.REQUEST_ID_HEADER] = request.request_id
        if own:
            response["traceresponse"] = traceresponse_header(span_context)
        return response

    @staticmethod
    def request_id(request: HttpRequest) -> str:
        """The caller's id: a well-formed X-Request-ID, else baggage request_id, else a new UUID."""
        given = request.headers.get(keys.REQUEST_ID_HEADER, "").strip()
        if is_request_id(given):
            return given
        from_baggage = baggage.get_baggage(keys.REQUEST_ID)
        if isinstance(from_baggage, str) and is_request_id(from_baggage):
            return from_baggage
        return str(uuid.uuid4())

    @staticmethod
    def record_headers(request: HttpRequest, span: trace.Span) -> None:
        limit = int(conf.get("FLOWEXEC_HEADER_VALUE_LIMIT"))
        span.set_attribute(keys.REQUEST_ID, request.request_id)
        recorded = getattr(span, "attributes", None) or {}
        if user_agent := request.headers.get("User-Agent", ""):
            # The instrumentation records the raw header; cap it like every header value.
            for attribute in _USER_AGENT_ATTRIBUTES:
                if attribute in recorded:
                    span.set_attribute(attribute, user_agent[:limit])
        for header, attribute in conf.get("FLOWEXEC_HEADER_ATTRIBUTES").items():
            if redaction.is_sensitive(header, conf.get("FLOWEXEC_REDACT_KEYS")):
                continue
            if header.lower() == keys.REQUEST_ID_HEADER.lower():
                value = request.request_id
            else:
                value = request.headers.get(header, "")
            if value:
                span.set_attribute(attribute, value[:limit])

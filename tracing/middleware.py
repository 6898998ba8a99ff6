"""Request headers -> server span attributes, and the request id and trace handed back to the caller."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from opentelemetry import trace

from tracing import attributes as keys
from tracing import conf
from tracing.propagation import traceresponse_header

# A request id we accept from a caller: printable, no separators that could split logs, bounded.
_REQUEST_ID = re.compile(rf"^{keys.REQUEST_ID_PATTERN}$")


class HeaderAttributesMiddleware:
    """Copy configured request headers onto the current server span; give every request an id.

    Placed after the OpenTelemetry Django middleware, so the current span is the server span.
    Never fails a request: a malformed header is ignored or replaced, never raised on.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = self.request_id(request)
        span = trace.get_current_span()
        if span.is_recording():
            self.record_headers(request, span)
        response = self.get_response(request)
        response[keys.REQUEST_ID_HEADER] = request.request_id
        span_context = span.get_span_context()
        if span_context.is_valid:
            response["traceresponse"] = traceresponse_header(span_context)
        return response

    @staticmethod
    def request_id(request: HttpRequest) -> str:
        """The caller's X-Request-ID when it is well-formed, else a new UUID."""
        given = request.headers.get(keys.REQUEST_ID_HEADER, "").strip()
        return given if _REQUEST_ID.match(given) else str(uuid.uuid4())

    @staticmethod
    def record_headers(request: HttpRequest, span: trace.Span) -> None:
        limit = int(conf.get("FLOWEXEC_HEADER_VALUE_LIMIT"))
        for header, attribute in conf.get("FLOWEXEC_HEADER_ATTRIBUTES").items():
            if header.lower() in conf.NEVER_RECORDED_HEADERS:
                continue
            if header.lower() == keys.REQUEST_ID_HEADER.lower():
                value = request.request_id
            else:
                value = request.headers.get(header, "")
            if value:
                span.set_attribute(attribute, value[:limit])

"""The one DRF exception handler: domain errors become JSON responses, never HTML pages."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from executions.engine.errors import FlowNotFound, FlowValidationError
from tracing.redaction import active_mask, masking, record_exception

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map engine errors to DRF exceptions, then let DRF render them."""
    if isinstance(exc, FlowValidationError):
        return Response(
            {"detail": f"invalid flow: {len(exc.problems)} problem(s)", "problems": exc.problems},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, FlowNotFound):
        exc = exceptions.NotFound(str(exc))
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        # Boundary: an unexpected error is logged and recorded on the server span but answered as JSON,
        # even with DEBUG on: no HTML, no traceback. Nobody knows which of the request's inputs were
        # secret by now, so every input value is masked in the log line, the span event and its status.
        with masking(_request_input_values(context)):
            logger.error("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
            span = trace.get_current_span()
            record_exception(span, exc)
            span.set_status(Status(StatusCode.ERROR, active_mask(f"{type(exc).__name__}: {exc}")))
        response = Response({"detail": "Internal server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return response


def _request_input_values(context: dict[str, Any]) -> list[Any]:
    """The values of the request body's `inputs` object, if it has one."""
    request = context.get("request")
    try:
        data = request.data if request is not None else None
    except Exception:  # boundary: the body itself may be what failed; then there is nothing to mask
        return []
    inputs = data.get("inputs") if isinstance(data, Mapping) else None
    return list(inputs.values()) if isinstance(inputs, Mapping) else []


@csrf_exempt  # also routed for any unknown /api/ path, where a CSRF refusal would be an HTML 403
def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """JSON 404 for paths outside the API too."""
    return JsonResponse({"detail": "Not found."}, status=404)

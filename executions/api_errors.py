"""The one DRF exception handler: domain errors become JSON responses, never HTML pages."""

from __future__ import annotations

import logging
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
        # Boundary: an unexpected error is logged (and recorded on the server span by the Django
        # instrumentation's middleware) but answered as JSON, even with DEBUG on: no HTML, no traceback.
        logger.error("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        span = trace.get_current_span()
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        response = Response({"detail": "Internal server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return response


@csrf_exempt  # also routed for any unknown /api/ path, where a CSRF refusal would be an HTML 403
def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """JSON 404 for paths outside the API too."""
    return JsonResponse({"detail": "Not found."}, status=404)

"""Trace API (search, one trace as a tree) and the OTLP/HTTP receiver, POST /v1/traces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from google.rpc import code_pb2
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from flowexec.api_schema import ERRORS
from tracing import conf
from tracing.access import INGEST_SPANS, trace_access
from tracing.models import Span
from tracing.serializers import TraceOutput, TraceSearchInput, TraceSummaryOutput
from tracing.store import receiver, selectors
from tracing.store.body import BadChunkedBody, BodyTooLarge, read_body

RETRY_AFTER_SECONDS = "5"


class ReceiverPermission(BasePermission):
    """Holders of tracing.ingest_spans only, unless FLOWEXEC_OTLP_RECEIVER_AUTH is off (a trusted network)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not conf.get("FLOWEXEC_OTLP_RECEIVER_AUTH"):
            return True
        return IsAuthenticated().has_permission(request, view) and request.user.has_perm(INGEST_SPANS)


def _closed_traces(user: Any) -> Callable[[set[str]], set[str]] | None:
    """Which traces this sender may not add spans to; None (anywhere) for staff and a trusted network."""
    if not user.is_authenticated or user.is_staff:
        return None
    return lambda trace_ids: trace_access().traces_closed_to(trace_ids=trace_ids, user=user)


@extend_schema(exclude=True)  # OTLP/HTTP, specified by OpenTelemetry rather than this schema
class OtlpTracesView(APIView):
    """Receive OTLP/HTTP trace exports (protobuf or JSON, gzip or not) into the span store."""

    permission_classes = [ReceiverPermission]
    # Anonymous senders exist only on a trusted network (receiver auth off), e.g. a Collector: not throttled.
    throttle_classes = [UserRateThrottle]
    parser_classes: list = []  # the body is read raw: chunked bodies and the size limit need it

    def post(self, request: Request) -> HttpResponse:
        """Decode and queue the spans; the answer follows the OTLP/HTTP specification."""
        try:
            media = receiver.media_type(request.content_type)
        except receiver.UnsupportedMediaType as exc:
            return _status(str(exc), receiver.JSON, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
        limit = conf.get("FLOWEXEC_OTLP_MAX_BYTES")
        try:
            body = read_body(request._request, limit=limit)
            result = receiver.receive(
                body,
                media=media,
                content_encoding=request.headers.get("Content-Encoding", ""),
                limit=limit,
                sender_id=request.user.pk if request.user.is_authenticated else None,
                closed_traces=_closed_traces(request.user),
            )
        except receiver.UnsupportedMediaType as exc:
            return _status(str(exc), media, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
        except BodyTooLarge:
            message = f"body larger than {limit} bytes"
            return _status(message, media, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, code_pb2.RESOURCE_EXHAUSTED)
        except (receiver.OtlpDecodeError, BadChunkedBody) as exc:
            return _status(str(exc), media, status.HTTP_400_BAD_REQUEST)
        except receiver.SpansForbidden as exc:
            return _status(str(exc), media, status.HTTP_403_FORBIDDEN, code_pb2.PERMISSION_DENIED)
        except receiver.StoreBusy as exc:
            response = _status(str(exc), media, status.HTTP_503_SERVICE_UNAVAILABLE, code_pb2.UNAVAILABLE)
            response["Retry-After"] = RETRY_AFTER_SECONDS
            return response
        return HttpResponse(receiver.response_body(result, media), content_type=media)


def _status(message: str, media: str, http_status: int, code: int = code_pb2.INVALID_ARGUMENT) -> HttpResponse:
    return HttpResponse(receiver.status_body(message, media, code=code), content_type=media, status=http_status)


@extend_schema_view(
    get=extend_schema(
        operation_id="traces_list",
        parameters=[TraceSearchInput],
        responses={200: TraceSummaryOutput(many=True), **ERRORS},
    )
)
class TraceListView(ListAPIView):
    """GET /api/traces/?service=&name=&min_duration=: traces with a matching span, most recent first."""

    serializer_class = TraceSummaryOutput
    queryset = Span.objects.none()  # names the model for the schema; list() queries through selectors

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Search traces; paginated."""
        params = TraceSearchInput(data=request.query_params)
        params.is_valid(raise_exception=True)
        visible = trace_access().visible_trace_ids(request.user)
        page = self.paginate_queryset(selectors.trace_search(**params.validated_data, within=visible))
        summaries = selectors.trace_summaries([row["trace_id"] for row in page])
        return self.get_paginated_response(TraceSummaryOutput(summaries, many=True).data)


class TraceDetailView(APIView):
    """GET /api/traces/{trace_id}/: every stored span of the trace, as a tree."""

    @extend_schema(operation_id="traces_retrieve", responses={200: TraceOutput, **ERRORS})
    def get(self, request: Request, trace_id: str) -> Response:
        """One trace; 404 when the store holds none of its spans."""
        trace_id = trace_id.lower()
        if not selectors.is_trace_id(trace_id):
            raise ValidationError({"trace_id": ["must be 32 hex digits"]})
        trace = selectors.trace_get_live(trace_id)
        # A trace the user may not see is answered like a missing one: its existence is not disclosed.
        if trace is None or not trace_access().trace_visible(trace_id=trace_id, user=request.user):
            raise NotFound(f"no spans stored for trace {trace_id}")
        return Response(TraceOutput(trace).data)

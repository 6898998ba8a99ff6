"""Thin API views: shape the input, check who asks, make one service call, shape the output."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from executions import selectors, services, submission
from executions.filters import ExecutionFilter
from executions.models import Execution, Flow
from executions.pagination import ExecutionCursorPagination
from executions.parsers import DefinitionJSONParser, DefinitionYAMLParser
from executions.permissions import FlowPermissions, may_cancel
from executions.schema import FLOW_REQUEST
from executions.serializers import ExecutionCreateInput, ExecutionOutput, FlowOutput, FlowVersionInput
from flowexec.api_schema import ERRORS


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness probe: no auth, not traced."""
    return JsonResponse({"status": "ok"})


def ping(request: HttpRequest) -> JsonResponse:
    """Traced status: no auth, so a flow's downstream call to the service shows its server span."""
    return JsonResponse({"status": "ok"})


def _request_id(request: Request) -> str:
    return getattr(request._request, "request_id", "")


def _version(request: Request) -> int | None:
    params = FlowVersionInput(data=request.query_params)
    params.is_valid(raise_exception=True)
    return params.validated_data.get("version")


VERSION_PARAMETER = OpenApiParameter("version", int, description="a stored version; the latest when omitted")


@extend_schema_view(
    list=extend_schema(responses={200: FlowOutput(many=True), **ERRORS}),
    retrieve=extend_schema(parameters=[VERSION_PARAMETER], responses={200: FlowOutput, **ERRORS}),
    destroy=extend_schema(
        parameters=[OpenApiParameter("version", int, description="delete only this version; all when omitted")],
        responses={204: None, **ERRORS},
    ),
)
class FlowViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Flow]):
    """Flow definitions: the latest version of each, by name; a PUT stores a new version."""

    lookup_field = "name"
    lookup_value_converter = "slug"
    parser_classes = [DefinitionJSONParser, DefinitionYAMLParser]
    permission_classes = [FlowPermissions]
    serializer_class = FlowOutput

    def get_queryset(self):
        return selectors.flow_list()

    @extend_schema(request=FLOW_REQUEST, responses={201: FlowOutput, 200: FlowOutput, **ERRORS})
    def create(self, request: Request) -> Response:
        flow, created = services.flow_save(source=request.data)
        return Response(FlowOutput(flow).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(FlowOutput(selectors.flow_get(name=name, version=_version(request))).data)

    @extend_schema(request=FLOW_REQUEST, responses={201: FlowOutput, 200: FlowOutput, **ERRORS})
    def update(self, request: Request, name: str) -> Response:
        flow, created = services.flow_save(source=request.data, name=name)
        return Response(FlowOutput(flow).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def destroy(self, request: Request, name: str) -> Response:
        services.flow_delete(name=name, version=_version(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(responses={200: ExecutionOutput(many=True), **ERRORS}),
    retrieve=extend_schema(responses={200: ExecutionOutput, **ERRORS}),
)
class ExecutionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Execution]):
    """Executions: run a flow, list and read runs, cancel one; users see their own, staff all."""

    serializer_class = ExecutionOutput
    filterset_class = ExecutionFilter
    pagination_class = ExecutionCursorPagination
    lookup_value_converter = "uuid"

    def get_queryset(self):
        return selectors.execution_list(user=self.request.user)

    @extend_schema(
        request=ExecutionCreateInput,
        responses={
            201: ExecutionOutput,
            202: OpenApiResponse(ExecutionOutput, "accepted, running async"),
            **ERRORS,
        },
    )
    def create(self, request: Request) -> Response:
        params = ExecutionCreateInput(data=request.data)
        params.is_valid(raise_exception=True)
        execution = submission.execution_submit(
            **params.validated_data,
            request_id=_request_id(request),
            user_agent=request.headers.get("User-Agent", ""),
            user=request.user,
        )
        # Async is always 202, even when a trivial flow finished before the answer was built.
        finished = params.validated_data["wait"] and execution.is_finished
        code = status.HTTP_201_CREATED if finished else status.HTTP_202_ACCEPTED
        return Response(self.get_serializer(execution).data, status=code)

    @extend_schema(request=None, responses={200: ExecutionOutput, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        execution = self.get_object()
        if not may_cancel(request.user, execution):
            raise PermissionDenied("you may not cancel this execution")
        execution = services.execution_cancel(execution=execution)
        return Response(self.get_serializer(selectors.execution_get(execution_id=execution.pk)).data)

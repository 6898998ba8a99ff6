"""Thin API views: shape the input, make one service call, shape the output."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from executions import selectors, services, submission
from executions.filters import ExecutionFilter
from executions.models import Execution, Flow
from executions.parsers import YAMLParser
from executions.serializers import ExecutionCreateInput, ExecutionOutput, FlowOutput


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness probe: no auth, not traced."""
    return JsonResponse({"status": "ok"})


def _request_id(request: Request) -> str:
    return getattr(request._request, "request_id", "")


class FlowViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Flow]):
    """Flow definitions: the latest version of each, by name; a PUT stores a new version."""

    lookup_field = "name"
    lookup_value_converter = "slug"
    parser_classes = [JSONParser, YAMLParser]
    serializer_class = FlowOutput

    def get_queryset(self):
        return selectors.flow_list()

    @extend_schema(request=dict, responses={201: FlowOutput, 200: FlowOutput})
    def create(self, request: Request) -> Response:
        flow, created = services.flow_save(source=request.data)
        return Response(FlowOutput(flow).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def retrieve(self, request: Request, name: str) -> Response:
        version = request.query_params.get("version")
        flow = selectors.flow_get(name=name, version=int(version) if version and version.isdigit() else None)
        return Response(FlowOutput(flow).data)

    @extend_schema(request=dict, responses={201: FlowOutput, 200: FlowOutput})
    def update(self, request: Request, name: str) -> Response:
        flow, created = services.flow_save(source=request.data, name=name)
        return Response(FlowOutput(flow).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def destroy(self, request: Request, name: str) -> Response:
        services.flow_delete(name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExecutionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Execution]
):
    """Executions: run a flow, list and read runs, cancel one."""

    serializer_class = ExecutionOutput
    filterset_class = ExecutionFilter
    lookup_value_converter = "uuid"

    def get_queryset(self):
        return selectors.execution_list()

    @extend_schema(
        request=ExecutionCreateInput,
        responses={201: ExecutionOutput, 202: OpenApiResponse(ExecutionOutput, "accepted, running async")},
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
        code = status.HTTP_201_CREATED if execution.is_finished else status.HTTP_202_ACCEPTED
        execution = selectors.execution_get(execution_id=execution.pk)
        return Response(self.get_serializer(execution).data, status=code)

    @extend_schema(request=None, responses=ExecutionOutput)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        execution = services.execution_cancel(execution=self.get_object())
        return Response(self.get_serializer(selectors.execution_get(execution_id=execution.pk)).data)


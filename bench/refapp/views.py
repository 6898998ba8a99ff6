"""POST /bench/ref/: validate the body, insert one row, answer 201 — what any DRF create costs."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.refapp.models import Note


class NoteInput(serializers.Serializer):
    """Same shape as the body of POST /api/executions/."""

    flow = serializers.SlugField(max_length=100)
    inputs = serializers.DictField(default=dict)


class NoteOutput(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "flow", "inputs", "created_at"]


class NoteCreate(APIView):
    """The project's default authentication, permissions and throttles apply, as for the product's API."""

    def post(self, request: Request) -> Response:
        params = NoteInput(data=request.data)
        params.is_valid(raise_exception=True)
        note = Note.objects.create(**params.validated_data)
        return Response(NoteOutput(note).data, status=status.HTTP_201_CREATED)

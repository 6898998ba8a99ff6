"""The API's output shapes: the written-out representations say exactly what DRF's generic walk says."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse, set_script_prefix
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from executions import services, submission
from executions.models import Execution, StepRun
from executions.serializers import ExecutionOutput, StepRunOutput

pytestmark = pytest.mark.django_db(transaction=True)


def _generic(serializer: serializers.ModelSerializer, instance: Any) -> dict[str, Any]:
    return dict(serializers.ModelSerializer.to_representation(serializer, instance))


def test_execution_and_step_output_match_drfs_generic_representation(make_flow: Any, user: Any) -> None:
    child = make_flow(steps=[{"name": "inner", "type": "template", "template": "${inputs.word}"}],
                      inputs={"word": {"type": "string", "secret": True}}, outputs={"said": "${steps.inner.output}"})
    parent = make_flow(steps=[
        {"name": "a", "type": "template", "template": "x"},
        {"name": "nap", "type": "sleep", "seconds": 0.01, "after": ["a"]},
        {"name": "call", "type": "flow", "flow": child.name, "inputs": {"word": "psst"}, "after": ["nap"]},
        {"name": "boom", "type": "fail", "after": ["call"]},
    ])
    submission.execution_submit(flow=parent.name, inputs={}, inline=True, user=user, request_id="r-1",
                                user_agent="tests/1")
    pending = services.execution_create(flow=child, inputs={"word": "later"})
    context = {"request": Request(APIRequestFactory().get("/api/executions/", HTTP_HOST="127.0.0.1"))}
    executions = list(Execution.objects.select_related("flow").prefetch_related("step_runs"))
    assert {e.status for e in executions} == {"failed", "succeeded", "pending"} and pending in executions
    assert any(e.parent_id for e in executions)
    for execution in executions:
        output = ExecutionOutput(execution, context=context)
        assert output.to_representation(execution) == _generic(output, execution)
    steps = list(StepRun.objects.all())
    assert {s.status for s in steps} == {"succeeded", "failed"}
    for step in steps:
        output = StepRunOutput(step, context=context)
        assert output.to_representation(step) == _generic(output, step)


def test_links_are_reversed_under_the_current_script_prefix(make_flow: Any) -> None:
    """The reversed paths are cached: per script prefix (and URLconf), so a mounted service links under its mount."""
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    execution = submission.execution_submit(flow=flow.name, inputs={})
    context = {"request": Request(APIRequestFactory().get("/api/executions/", HTTP_HOST="127.0.0.1"))}

    def links() -> dict[str, Any]:
        return ExecutionOutput(execution, context=context).data["links"]

    at_root = links()
    assert at_root["self"] == f"http://127.0.0.1{reverse('execution-detail', args=[execution.pk])}"
    assert at_root["cancel"] == f"http://127.0.0.1{reverse('execution-cancel', args=[execution.pk])}"
    assert at_root["admin"] == f"http://127.0.0.1/admin/executions/execution/{execution.pk}/change/"
    set_script_prefix("/mounted/")
    try:
        mounted = links()
    finally:
        set_script_prefix("/")
    assert mounted["self"] == f"http://127.0.0.1/mounted/api/executions/{execution.pk}/"
    assert mounted["admin"] == f"http://127.0.0.1/mounted/admin/executions/execution/{execution.pk}/change/"
    assert links() == at_root

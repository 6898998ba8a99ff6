"""A running execution's trace shows its running steps (from the step-run rows) beside the stored spans."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from executions import submission
from executions.models import Execution, StepRun
from executions.open_spans import open_spans
from flowexec.cli.render import render_trace
from tests.live import wait_until
from tracing.store.rows import span_row
from tracing.store.selectors import RUNNING
from tracing.store.writer import write_rows

TRACE = "5e" * 16
EXECUTION_SPAN, STORED_STEP = "c" * 16, "d" * 16


def store_span(span_id: str, parent: str, name: str, start: Any, end: Any) -> None:
    write_rows([
        span_row(
            trace_id=TRACE, span_id=span_id, parent_id=parent, name=name, kind="INTERNAL",
            start_ns=int(start.timestamp() * 1e6) * 1000, end_ns=int(end.timestamp() * 1e6) * 1000,
            status="UNSET", status_message="", attributes={}, events=[], resource={"service.name": "flowexec-worker"},
        )
    ])  # fmt: skip


def flatten(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from flatten(node["children"])


@pytest.fixture
def running_execution(db: None) -> Execution:
    """Running: step `first` finished (its span stored), `pause` running, `unsent` finished but not exported."""
    now = timezone.now()
    execution = Execution.objects.create(
        flow_name="slow", flow_version=1, status=Execution.Status.RUNNING, trace_id=TRACE, span_id=EXECUTION_SPAN,
        started_at=now - timedelta(seconds=3),
    )  # fmt: skip
    store_span(STORED_STEP, EXECUTION_SPAN, "step first", now - timedelta(seconds=3), now - timedelta(seconds=2.9))
    StepRun.objects.create(
        execution=execution, name="first", type="template", status=StepRun.Status.SUCCEEDED, attempts=1,
        started_at=now - timedelta(seconds=3), finished_at=now - timedelta(seconds=2.9), span_id=STORED_STEP,
    )  # fmt: skip
    StepRun.objects.create(
        execution=execution, name="unsent", type="template", status=StepRun.Status.FAILED, attempts=1,
        error="boom", started_at=now - timedelta(seconds=2.5), finished_at=now - timedelta(seconds=2), span_id="e" * 16,
    )  # fmt: skip
    StepRun.objects.create(
        execution=execution, name="pause", type="sleep", status=StepRun.Status.RUNNING, attempts=2,
        started_at=now - timedelta(seconds=2),
    )  # fmt: skip
    return execution


def test_running_execution_and_its_running_step_are_open_spans(running_execution: Execution) -> None:
    spans = {span.name: span for span in open_spans(TRACE)}
    assert set(spans) == {"execute_flow slow", "step first", "step unsent", "step pause"}
    execution, pause, unsent = spans["execute_flow slow"], spans["step pause"], spans["step unsent"]
    assert (execution.span_id, execution.end_time, execution.attributes["flow.execution.id"]) == (
        EXECUTION_SPAN, None, str(running_execution.pk),
    )  # fmt: skip
    assert pause.parent_id == EXECUTION_SPAN and pause.end_time is None and pause.attributes["flow.step.attempt"] == 2
    assert unsent.span_id == "e" * 16 and unsent.end_time is not None and unsent.status == "ERROR"


def test_finished_executions_have_no_open_spans(running_execution: Execution) -> None:
    Execution.objects.filter(pk=running_execution.pk).update(status=Execution.Status.SUCCEEDED)
    assert open_spans(TRACE) == []


def test_trace_api_merges_running_steps_into_the_stored_tree_flagged(
    api_client: APIClient, running_execution: Execution
) -> None:
    response = api_client.get(f"/api/traces/{TRACE}/")
    assert response.status_code == 200
    trace = response.json()
    (root,) = trace["spans"]
    assert root["name"] == "execute_flow slow" and root["attributes"][RUNNING] is True
    assert root["service_name"] == "flowexec-service"
    children = [(child["name"], child["attributes"].get(RUNNING, False)) for child in root["children"]]
    assert children == [("step first", False), ("step unsent", False), ("step pause", True)]  # by start time
    pause = root["children"][2]
    assert pause["duration_ms"] == pytest.approx(2000, abs=1000) and pause["service_name"] == "flowexec-service"
    assert trace["span_count"] == 4 and trace["duration_ms"] >= 3000


@pytest.mark.skipif(
    os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true", reason="a trace id needs the SDK (OTEL_SDK_DISABLED)"
)
@pytest.mark.django_db(transaction=True)
def test_a_running_async_execution_shows_its_sleeping_step_and_child_execution_in_the_trace_api(
    api_client: APIClient, make_flow: Any
) -> None:
    make_flow(name="napper", steps=[{"name": "nap", "type": "sleep", "seconds": 1.5}])
    make_flow(name="parent", steps=[
        {"name": "quick", "type": "template", "template": "x"},
        {"name": "sub", "type": "flow", "flow": "napper", "after": ["quick"]},
    ])  # fmt: skip
    execution = submission.execution_submit(flow="parent", inputs={}, wait=False)
    try:
        nap = wait_until(
            lambda: StepRun.objects.filter(name="nap", status=StepRun.Status.RUNNING).first(),
            timeout=10, message="the child's sleep step to run",
        )  # fmt: skip
        trace_id = Execution.objects.get(pk=execution.pk).trace_id
        assert nap.execution.trace_id == trace_id
        spans = list(flatten(api_client.get(f"/api/traces/{trace_id}/").json()["spans"]))
        running = {span["name"]: span for span in spans if span["attributes"].get(RUNNING)}
        assert set(running) >= {"execute_flow parent", "step sub", "execute_flow napper", "step nap"}
        assert running["execute_flow napper"]["parent_id"] == running["step sub"]["span_id"]
        assert running["step nap"]["parent_id"] == running["execute_flow napper"]["span_id"]
        assert running["step nap"]["depth"] == 3
    finally:
        wait_until(
            lambda: Execution.objects.get(pk=execution.pk).is_finished, timeout=15, message="the execution to end"
        )


def test_flowexec_trace_shows_the_running_steps_flagged(api_client: APIClient, running_execution: Execution) -> None:
    lines = render_trace(api_client.get(f"/api/traces/{TRACE}/").json()).splitlines()
    running = [line.strip().split("  ")[0] for line in lines if line.endswith("  running")]
    assert running == ["execute_flow slow", "step pause"]
    assert any(line.strip().startswith("step first") and not line.endswith("running") for line in lines)


def test_steps_nest_under_the_execution_before_its_row_names_the_span(running_execution: Execution) -> None:
    Execution.objects.filter(pk=running_execution.pk).update(span_id="")
    spans = {span.name: span for span in open_spans(TRACE)}
    assert spans["step pause"].parent_id == spans["execute_flow slow"].span_id == running_execution.pk.hex[:16]

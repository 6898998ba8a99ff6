"""Services: the execution row always finishes; steps recorded; cancel; crash recovery."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from executions import runner, services, submission
from executions.models import Execution, StepRun
from tests.live import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def run(flow: Any, **inputs: Any) -> Execution:
    return submission.execution_submit(flow=flow.name, inputs=inputs, inline=True, client="api")


def test_independent_branches_run_concurrently(make_flow: Any) -> None:
    flow = make_flow(
        steps=[
            {"name": "left", "type": "sleep", "seconds": 0.3},
            {"name": "right", "type": "sleep", "seconds": 0.3},
            {"name": "join", "type": "template", "template": "done", "after": ["left", "right"]},
        ]
    )
    execution = run(flow)
    assert execution.status == Execution.Status.SUCCEEDED
    left, right, join = (execution.step_runs.get(name=n) for n in ["left", "right", "join"])
    # Overlapping intervals: each branch started before the other finished.
    assert left.started_at < right.finished_at and right.started_at < left.finished_at
    assert join.started_at >= max(left.finished_at, right.finished_at)


def test_failing_step_fails_execution_and_keeps_finished_steps(make_flow: Any, spans: Any) -> None:
    flow = make_flow(
        steps=[
            {"name": "ok", "type": "template", "template": "x"},
            {"name": "boom", "type": "fail", "message": "kaput", "after": ["ok"]},
            {"name": "later", "type": "template", "template": "y", "after": ["boom"]},
        ]
    )
    execution = run(flow)
    assert execution.status == Execution.Status.FAILED
    assert 'step "boom"' in execution.error and "kaput" in execution.error
    assert execution.finished_at is not None
    assert execution.step_runs.get(name="ok").status == StepRun.Status.SUCCEEDED
    assert execution.step_runs.get(name="boom").status == StepRun.Status.FAILED
    assert not execution.step_runs.filter(name="later").exists()
    from opentelemetry.trace import StatusCode

    assert spans.named(f"execute_flow {flow.name}").status.status_code is StatusCode.ERROR
    assert spans.named("step boom").status.status_code is StatusCode.ERROR


def test_retries_are_counted_in_attempts(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "flaky", "type": "fail", "retries": 2}])
    execution = run(flow)
    assert execution.step_runs.get(name="flaky").attempts == 3
    assert execution.status == Execution.Status.FAILED


def test_step_timeout_fails_the_step_with_a_timeout_error(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "slow", "type": "sleep", "seconds": 5, "timeout": 0.2}])
    started = timezone.now()
    execution = run(flow)
    assert execution.status == Execution.Status.FAILED
    assert 'step "slow"' in execution.error and "timed out" in execution.error
    assert execution.step_runs.get(name="slow").status == StepRun.Status.FAILED
    assert timezone.now() - started < timedelta(seconds=4)


def test_sub_flow_runs_as_child_execution_in_the_same_trace(make_flow: Any, spans: Any) -> None:
    inner = make_flow(
        name="inner",
        inputs={"who": {"type": "string"}},
        steps=[{"name": "hi", "type": "template", "template": "hi ${inputs.who}"}],
        outputs={"text": "${steps.hi.output}"},
    )
    outer = make_flow(
        steps=[{"name": "call", "type": "flow", "flow": inner.name, "inputs": {"who": "you"}}],
        outputs={"said": "${steps.call.output.text}"},
    )
    execution = run(outer)
    assert execution.status == Execution.Status.SUCCEEDED, execution.error
    assert execution.outputs == {"said": "hi you"}
    child = execution.children.get()
    assert child.trace_id == execution.trace_id and child.status == Execution.Status.SUCCEEDED
    step_span = spans.named("step call")
    assert spans.named("execute_flow inner").parent.span_id == step_span.context.span_id


def test_cancelling_a_running_execution_stops_later_steps(make_flow: Any) -> None:
    flow = make_flow(
        steps=[
            {"name": "first", "type": "sleep", "seconds": 0.5},
            {"name": "second", "type": "template", "template": "never", "after": ["first"]},
        ]
    )
    execution = services.execution_create(flow=flow, inputs={})
    worker = threading.Thread(target=services.execution_run, kwargs={"execution": execution})
    worker.start()
    wait_until(
        lambda: StepRun.objects.filter(execution=execution, name="first").exists(),
        timeout=10,
        message="first step to start",
    )
    services.execution_cancel(execution=execution)
    worker.join(timeout=10)
    assert not worker.is_alive()
    execution.refresh_from_db()
    assert execution.status == Execution.Status.CANCELLED
    assert not execution.step_runs.filter(name="second").exists()


def test_redelivered_run_of_a_finished_execution_does_nothing(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    execution = run(flow)
    again = services.execution_run(execution=Execution.objects.get(pk=execution.pk))
    assert again.status == Execution.Status.SUCCEEDED and again.finished_at == execution.finished_at
    assert StepRun.objects.filter(execution=execution).count() == 1


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def test_execution_left_running_by_a_crash_is_failed_by_the_sweep(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    crashed = services.execution_create(flow=flow, inputs={})
    dead_runner = f"{runner.HOSTNAME}:{_dead_pid()}:deadbeef"
    Execution.objects.filter(pk=crashed.pk).update(
        status=Execution.Status.RUNNING,
        runner=dead_runner,
        heartbeat_at=timezone.now(),
        started_at=timezone.now(),
    )
    StepRun.objects.create(execution=crashed, name="a", type="template", started_at=timezone.now())
    elsewhere = services.execution_create(flow=flow, inputs={})
    Execution.objects.filter(pk=elsewhere.pk).update(
        status=Execution.Status.RUNNING, runner="other-host:1:cafe", heartbeat_at=timezone.now()
    )

    assert services.execution_fail_stale() == 1

    crashed.refresh_from_db()
    assert crashed.status == Execution.Status.FAILED
    assert "interrupted" in crashed.error and dead_runner in crashed.error
    assert crashed.step_runs.get(name="a").status == StepRun.Status.FAILED
    elsewhere.refresh_from_db()
    assert elsewhere.status == Execution.Status.RUNNING  # a live runner on another host is left alone


def test_execution_whose_runner_stopped_reporting_is_failed(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    silent = services.execution_create(flow=flow, inputs={})
    Execution.objects.filter(pk=silent.pk).update(
        status=Execution.Status.RUNNING,
        runner="other-host:1:cafe",
        heartbeat_at=timezone.now() - timedelta(minutes=10),
    )
    assert services.execution_fail_stale(stale_after=60) == 1
    silent.refresh_from_db()
    assert silent.status == Execution.Status.FAILED and "other-host:1:cafe" in silent.error


def test_flow_save_is_idempotent_and_versions_changes(db: None) -> None:
    document = {"name": "v", "steps": [{"name": "a", "type": "template", "template": "x"}]}
    first, created = services.flow_save(source=document)
    same, created_again = services.flow_save(source={**document, "version": 7})
    changed, created_changed = services.flow_save(source={**document, "description": "new"})
    assert (created, created_again, created_changed) == (True, False, True)
    assert (first.version, same.version, changed.version) == (1, 1, 2)


def test_execution_queued_in_this_process_is_kept_alive_by_the_heartbeat(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    queued = services.execution_create(flow=flow, inputs={})
    Execution.objects.filter(pk=queued.pk).update(
        runner=runner.runner_id(), heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    with runner.owning(str(queued.pk)):
        services.execution_heartbeat(execution_ids=runner.active_ids())
        assert services.execution_fail_stale(stale_after=60) == 0
    queued.refresh_from_db()
    assert queued.status == Execution.Status.PENDING


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(db: None) -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"

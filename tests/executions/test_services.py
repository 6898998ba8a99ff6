"""Services: the execution row always finishes; steps recorded; cancel; crash recovery."""

from __future__ import annotations

import http.server
import io
import subprocess
import sys
import threading
import time
import uuid
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


def test_a_new_flow_version_is_run_at_once_after_runs_of_the_old_one(make_flow: Any) -> None:
    """The parsed definitions are cached per process: a new version must not be answered from them."""
    def save(word: str) -> None:
        make_flow(name="versioned", steps=[{"name": "say", "type": "template", "template": word}],
                  outputs={"said": "${steps.say.output}"})

    save("one")
    first = submission.execution_submit(flow="versioned", inputs={})
    save("two")
    second = submission.execution_submit(flow="versioned", inputs={})
    assert (first.flow_version, first.outputs) == (1, {"said": "one"})
    assert (second.flow_version, second.outputs) == (2, {"said": "two"})
    assert services.flow_definition(second.flow).steps[0].config["template"] == "two"


def test_a_changed_engine_setting_applies_to_the_next_run(make_flow: Any, settings: Any) -> None:
    """The engine's settings are read once per process; a settings change (setting_changed) reads them again."""
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    assert run(flow).status == Execution.Status.SUCCEEDED
    settings.FLOWEXEC_STEP_WORKERS = 7
    settings.FLOWEXEC_HTTP_ALLOWED_HOSTS = ["api.example"]
    config = services.engine_config()
    assert (config.max_workers, config.http_allowed_hosts) == (7, frozenset({"api.example"}))


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


# --- where executions run: bounded sync wait, graceful stop, orphans -------------------------


def test_sync_submit_waits_only_up_to_the_bound_and_returns_the_execution_still_running(
    make_flow: Any, settings: Any
) -> None:
    settings.FLOWEXEC_SYNC_WAIT = 0.3
    flow = make_flow(steps=[{"name": "nap", "type": "sleep", "seconds": 3}])
    started = time.monotonic()
    execution = submission.execution_submit(flow=flow.name, inputs={}, wait=True)
    assert time.monotonic() - started < 2
    assert execution.status in (Execution.Status.PENDING, Execution.Status.RUNNING)
    # It still runs to the end, off the request, on this process's pool.
    wait_until(lambda: Execution.objects.get(pk=execution.pk).is_finished, timeout=15, message="the run")
    assert Execution.objects.get(pk=execution.pk).status == Execution.Status.SUCCEEDED


def test_sync_api_request_past_the_bound_answers_202_with_the_running_execution(
    api_client: Any, make_flow: Any, settings: Any
) -> None:
    settings.FLOWEXEC_SYNC_WAIT = 0.3
    flow = make_flow(steps=[{"name": "nap", "type": "sleep", "seconds": 3}])
    response = api_client.post("/api/executions/", {"flow": flow.name}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] in ("pending", "running")
    wait_until(lambda: Execution.objects.get(pk=response.json()["id"]).is_finished, timeout=15, message="run")


@pytest.fixture
def fresh_pool(monkeypatch: Any) -> Any:
    """This test's own in-process pool and stop flag, so stopping it leaves the other tests' alone."""
    monkeypatch.setattr(submission, "_pool", None)
    monkeypatch.setattr(submission, "_stopping", threading.Event())
    monkeypatch.setattr(submission, "_queued", {})
    monkeypatch.setattr(submission, "_running", set())
    return submission


def test_graceful_stop_finishes_running_executions_and_leaves_queued_ones_pending(
    make_flow: Any, settings: Any, fresh_pool: Any
) -> None:
    settings.FLOWEXEC_ASYNC_WORKERS = 1
    flow = make_flow(steps=[{"name": "nap", "type": "sleep", "seconds": 0.5}])
    first, queued = (submission.execution_submit(flow=flow.name, inputs={}, wait=False) for _ in range(2))
    wait_until(lambda: Execution.objects.get(pk=first.pk).status == Execution.Status.RUNNING, timeout=10,
               message="the first run to start")

    assert submission.stop(grace=10) == 0

    assert Execution.objects.get(pk=first.pk).status == Execution.Status.SUCCEEDED
    queued.refresh_from_db()
    assert queued.status == Execution.Status.PENDING and queued.runner == runner.runner_id()
    assert str(queued.pk) not in runner.active_ids()  # no longer reported: adopted once this process is gone


def test_graceful_stop_fails_what_outlives_the_grace_period_with_the_reason(
    make_flow: Any, fresh_pool: Any
) -> None:
    flow = make_flow(steps=[{"name": "nap", "type": "sleep", "seconds": 30}])
    long = submission.execution_submit(flow=flow.name, inputs={}, wait=False)
    wait_until(lambda: StepRun.objects.filter(execution=long, name="nap").exists(), timeout=10, message="nap")
    started = time.monotonic()
    assert submission.stop(grace=0.5) == 1
    assert time.monotonic() - started < 5
    long.refresh_from_db()
    assert long.status == Execution.Status.FAILED and "the service stopped" in long.error
    Execution.objects.filter(pk=long.pk).update(status=Execution.Status.CANCELLED)  # ends its sleep step
    wait_until(lambda: not fresh_pool._running, timeout=10, message="the abandoned run to wind down")


def test_pending_execution_of_a_dead_runner_is_adopted_and_run(make_flow: Any, fresh_pool: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"}])
    orphan = services.execution_create(flow=flow, inputs={})
    Execution.objects.filter(pk=orphan.pk).update(runner=f"{runner.HOSTNAME}:{_dead_pid()}:deadbeef")
    never_owned = services.execution_create(flow=flow, inputs={}, owned=False)  # a broker's to run

    assert submission.resume_orphans() == 1

    wait_until(lambda: Execution.objects.get(pk=orphan.pk).is_finished, timeout=10, message="the orphan")
    assert Execution.objects.get(pk=orphan.pk).status == Execution.Status.SUCCEEDED
    assert Execution.objects.get(pk=never_owned.pk).status == Execution.Status.PENDING


# --- cancel cascades, and nothing succeeds after it ---------------------------------------------


def _two_levels(make_flow: Any) -> Any:
    child = make_flow(name=f"child-{uuid.uuid4().hex[:6]}", steps=[{"name": "nap", "type": "sleep", "seconds": 30}])
    return make_flow(steps=[{"name": "call", "type": "flow", "flow": child.name, "timeout": 60}])


def test_cancelling_a_parent_cancels_its_running_child(make_flow: Any) -> None:
    parent_flow = _two_levels(make_flow)
    parent = services.execution_create(flow=parent_flow, inputs={})
    worker = threading.Thread(target=services.execution_run, kwargs={"execution": parent})
    worker.start()
    child = wait_until(lambda: Execution.objects.filter(parent=parent, status="running").first(), timeout=10,
                       message="the child to run")

    services.execution_cancel(execution=parent)

    child.refresh_from_db()
    assert child.status == Execution.Status.CANCELLED and "parent" in child.error
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert not StepRun.objects.filter(execution__in=[parent, child], status=StepRun.Status.SUCCEEDED).exists()


def test_run_subflow_with_stop_set_cancels_the_child_and_returns_promptly(make_flow: Any) -> None:
    parent_flow = _two_levels(make_flow)
    parent = services.execution_create(flow=parent_flow, inputs={})
    stop = threading.Event()
    recorder = services._StepRecorder(parent)
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            recorder.run_subflow(parent_flow.definition["steps"][0]["flow"], {}, 1, stop)
        except Exception as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    child = wait_until(lambda: Execution.objects.filter(parent=parent, status="running").first(), timeout=10,
                       message="the child to run")
    stop.set()
    caller.join(timeout=2)
    assert not caller.is_alive(), "run_subflow did not return within 2s of stop"
    assert "cancelled" in str(outcome["error"])
    child.refresh_from_db()
    assert child.status == Execution.Status.CANCELLED
    wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("flowexec-subflow")],
               timeout=10, message="the cancelled child to wind down")


def test_an_inline_step_shows_while_a_slow_step_beside_it_still_runs(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "slow", "type": "sleep", "seconds": 30},
                            {"name": "quick", "type": "template", "template": "done"}])
    execution = services.execution_create(flow=flow, inputs={})
    worker = threading.Thread(target=services.execution_run, kwargs={"execution": execution})
    worker.start()
    try:
        quick = wait_until(lambda: StepRun.objects.filter(execution=execution, name="quick").first(), timeout=5,
                           message="the finished inline step to be written while the slow one runs")
        assert quick.status == StepRun.Status.SUCCEEDED and quick.output == "done"
        assert StepRun.objects.get(execution=execution, name="slow").status == StepRun.Status.RUNNING
    finally:
        services.execution_cancel(execution=execution)
        worker.join(timeout=10)
    assert not worker.is_alive()


def test_a_finished_run_comes_back_with_its_steps_as_stored(make_flow: Any) -> None:
    flow = make_flow(steps=[{"name": "a", "type": "template", "template": "x"},
                            {"name": "b", "type": "sleep", "seconds": 0.01, "after": ["a"]},
                            {"name": "c", "type": "fail", "after": ["b"]}])
    execution = run(flow)
    remembered = [(s.pk, s.name, s.status, s.output, s.error, s.attempts, s.started_at, s.finished_at)
                  for s in execution.step_runs.all()]
    stored = [(s.pk, s.name, s.status, s.output, s.error, s.attempts, s.started_at, s.finished_at)
              for s in StepRun.objects.filter(execution=execution)]
    assert remembered == stored and [row[1] for row in stored] == ["a", "b", "c"]


def test_a_step_that_finishes_after_the_cancel_is_not_recorded_succeeded(make_flow: Any, settings: Any) -> None:
    release = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(10)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"late")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    settings.FLOWEXEC_HTTP_ALLOWED_HOSTS = ["127.0.0.1", f"127.0.0.1:{port}"]
    flow = make_flow(steps=[{"name": "call", "type": "http", "method": "GET", "url": f"http://127.0.0.1:{port}/"}])
    execution = services.execution_create(flow=flow, inputs={})
    worker = threading.Thread(target=services.execution_run, kwargs={"execution": execution})
    worker.start()
    try:
        wait_until(lambda: StepRun.objects.filter(execution=execution, name="call").exists(), timeout=10,
                   message="the http step to start")
        services.execution_cancel(execution=execution)
        release.set()
        worker.join(timeout=15)
    finally:
        release.set()
        server.shutdown()
    execution.refresh_from_db()
    assert execution.status == Execution.Status.CANCELLED
    assert execution.step_runs.get(name="call").status != StepRun.Status.SUCCEEDED


# --- the process bootstrap ------------------------------------------------------------------------


def test_bootstrap_starts_a_process_once_however_often_it_is_called(monkeypatch: Any) -> None:
    from flowexec import bootstrap

    passes: list[str] = []
    beats: list[Any] = []

    class FakeHeartbeat:
        def __init__(self, beat: Any, period: float) -> None:
            beats.append((beat, period))

        def start(self) -> FakeHeartbeat:
            return self

    monkeypatch.setattr(bootstrap, "_started_pid", 0)
    monkeypatch.setattr(bootstrap, "_start_up_pass", lambda: passes.append("pass"))
    monkeypatch.setattr(bootstrap.runner, "Heartbeat", FakeHeartbeat)
    monkeypatch.setattr(bootstrap, "instrument_django_process", lambda name: None)

    assert bootstrap.start("flowexec-service", serve=True) is True
    assert bootstrap.start("flowexec-service", serve=True) is False  # gunicorn: post_fork + wsgi import
    assert passes == ["pass"] and len(beats) == 1
    assert beats[0][1] == runner.heartbeat_period(60.0)


# --- secret inputs at rest ------------------------------------------------------------------------

SECRET = "s3cr3t-VALUE-8842"
PASSWORD = "hunter2-PW-1937"


def _everything_in_the_database() -> str:
    """A dump of the database: `manage.py dumpdata`, plus every column of every table in raw SQL."""
    from django.core.management import call_command
    from django.db import connection

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    texts = [dump.getvalue()]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            texts.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(texts)


def _secret_flow(make_flow: Any, *steps: dict[str, Any]) -> Any:
    return make_flow(
        inputs={"api_key": {"type": "string", "secret": True}, "password": {"type": "string"}},
        steps=[{"name": "use", "type": "template", "template": "key=${inputs.api_key} pw=${inputs.password}"},
               *steps],
        outputs={"said": "${steps.use.output}"},
    )


def test_secret_inputs_are_encrypted_while_running_and_gone_from_a_database_dump_after(
    make_flow: Any, spans: Any
) -> None:
    flow = _secret_flow(make_flow, {"name": "nap", "type": "sleep", "seconds": 0.5, "after": ["use"]})
    execution = services.execution_create(flow=flow, inputs={"api_key": SECRET, "password": PASSWORD})
    assert execution.inputs == {"api_key": "[REDACTED]", "password": "[REDACTED]"}
    worker = threading.Thread(target=services.execution_run, kwargs={"execution": execution})
    worker.start()
    wait_until(lambda: StepRun.objects.filter(execution=execution, name="nap").exists(), timeout=10,
               message="the run to reach its second step")
    during = _everything_in_the_database()
    assert Execution.objects.get(pk=execution.pk).secret_inputs  # sealed, readable by the runner
    worker.join(timeout=10)

    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED, execution.error
    assert execution.secret_inputs == ""
    after = _everything_in_the_database()
    for text in (during, after):
        assert SECRET not in text and PASSWORD not in text
    exported = repr([(s.attributes, [e.attributes for e in s.events]) for s in spans.all()])
    assert SECRET not in exported and PASSWORD not in exported


@pytest.mark.parametrize("ending", ["fail", "cancel"])
def test_secret_inputs_are_erased_on_every_finish(make_flow: Any, ending: str) -> None:
    flow = _secret_flow(make_flow)
    execution = services.execution_create(flow=flow, inputs={"api_key": SECRET, "password": PASSWORD})
    if ending == "fail":
        services.execution_fail(execution_id=execution.pk, reason="interrupted: test")
    else:
        services.execution_cancel(execution=execution)
    assert Execution.objects.get(pk=execution.pk).secret_inputs == ""


def test_secret_inputs_sealed_with_another_key_fail_the_run_with_the_reason(make_flow: Any, settings: Any) -> None:
    flow = _secret_flow(make_flow)
    execution = services.execution_create(flow=flow, inputs={"api_key": SECRET, "password": PASSWORD})
    settings.FLOWEXEC_SECRETS_KEY = "another-key"
    execution = services.execution_run(execution=execution)
    assert execution.status == Execution.Status.FAILED and "cannot be decrypted" in execution.error


def test_a_crash_outside_the_engine_masks_the_secret_in_error_log_and_span(
    make_flow: Any, spans: Any, monkeypatch: Any, caplog: Any
) -> None:
    from tracing.redaction import SecretsLogFilter

    def crash(definition: Any, inputs: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"driver refused {inputs['api_key']}")

    monkeypatch.setattr(services.engine, "run", crash)
    caplog.handler.addFilter(SecretsLogFilter())
    flow = _secret_flow(make_flow)
    execution = services.execution_create(flow=flow, inputs={"api_key": SECRET, "password": PASSWORD})
    execution = services.execution_run(execution=execution)

    assert execution.status == Execution.Status.FAILED
    assert execution.error == "internal error: driver refused [REDACTED]"
    assert "execution" in caplog.text and "crashed" in caplog.text and SECRET not in caplog.text
    exported = repr([(s.status.description, [e.attributes for e in s.events]) for s in spans.all()])
    assert "driver refused [REDACTED]" in exported and SECRET not in exported

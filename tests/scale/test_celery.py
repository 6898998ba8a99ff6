"""Async executions on real Celery workers over Redis: spread, one trace each, crash and duplicate safety.

The live-worker tests start the service and `celery -A flowexec worker` processes as subprocesses
that share one database (the service's) and one Redis broker; every test uses its own queue, so
tasks a test leaves behind never reach another test's workers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import urllib3
from opentelemetry.instrumentation.utils import suppress_instrumentation

from tests.live import ROOT, LiveService, base_env, require_service, start_service, wait_until
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

BROKER_URL = os.environ.get("FLOWEXEC_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
AMQP_URL = os.environ.get("FLOWEXEC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
TASK_NAME = "executions.tasks.run_execution"
PUBLISH_SPAN = f"apply_async/{TASK_NAME}"
RUN_SPAN = f"run/{TASK_NAME}"


# --------------------------------------------------------------------------- helpers


class Cluster:
    """The service, an OTLP receiver and any number of Celery workers, all on one queue."""

    def __init__(self, directory: Path, receiver: OtlpReceiver, broker_url: str, **env: str) -> None:
        self.directory = directory
        self.receiver = receiver
        self.broker_url = broker_url
        self.queue = f"flowexec-test-{uuid.uuid4().hex[:12]}"
        self.env = {
            "FLOWEXEC_BROKER_URL": broker_url,
            "FLOWEXEC_CELERY_QUEUE": self.queue,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            **env,
        }
        # gunicorn, as in production (runserver's listen backlog of 10 resets a burst of 40 connections).
        self.service: LiveService = start_service(directory, env=self.env, server="gunicorn", workers=2)
        self.service.http = urllib3.PoolManager(retries=False, maxsize=40)
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def start_worker(self, name: str, *, pool: str = "prefork") -> subprocess.Popen[bytes]:
        """Start `celery -A flowexec worker` on this cluster's queue and wait until it is ready."""
        log_path = self.directory / f"worker-{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "flowexec", "worker", "--loglevel=INFO",
            "--concurrency=1", f"--pool={pool}", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", self.queue,
        ]
        env = base_env(DATABASE_URL=self.service.database_url, **self.env)
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.workers[name] = process

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"worker {name} exited with {process.returncode}:\n{self.log(name)}")
            return " ready." in self.log(name)

        wait_until(ready, timeout=60, message=f"celery worker {name}")
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"worker-{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- worker {name}\n{self.log(name)}" for name in self.workers)

    def submit(self, flow: str, *, request_id: str, wait: bool = False) -> dict[str, Any]:
        """POST an execution the way a client does, with a request id and W3C baggage (no traceparent).

        The pytest process's own urllib3 instrumentation is suppressed, so the service's server span
        is the root of the trace.
        """
        with suppress_instrumentation():
            response = self.service.request(
                "POST", "/api/executions/", json={"flow": flow, "wait": wait},
                headers={"X-Request-ID": request_id, "baggage": f"request_id={request_id},client=scale-test"},
            )
        assert response.status in (201, 202), response.data
        return json.loads(response.data)

    def execution(self, execution_id: str) -> dict[str, Any]:
        response = self.service.request("GET", f"/api/executions/{execution_id}/")
        assert response.status == 200, response.data
        return json.loads(response.data)

    def save_flow(self, document: dict[str, Any]) -> str:
        response = self.service.request("POST", "/api/flows/", json=document)
        assert response.status in (200, 201), response.data
        return document["name"]

    def runners(self) -> dict[str, str]:
        """Execution id -> the `host:pid:nonce` runner that claimed it, read from the shared database."""
        url = self.service.database_url
        query = "SELECT id, runner FROM executions_execution"
        if url.startswith("sqlite:///"):
            with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
                rows = conn.execute(query).fetchall()
        else:
            import psycopg

            with psycopg.connect(url) as conn:
                rows = conn.execute(query).fetchall()
        return {str(uuid.UUID(str(pk))): runner for pk, runner in rows}

    def worker_of(self, pid: int) -> str | None:
        """Which worker a process belongs to: the worker itself (solo) or its pool child (prefork)."""
        for name, process in self.workers.items():
            if process.pid == pid or _parent_pid(pid) == process.pid:
                return name
        return None

    def stop(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.service.stop()
        _drop_queue(self.broker_url, self.queue)


def _parent_pid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return None


def _runner_pid(runner: str) -> int:
    return int(runner.split(":")[1])


def _drop_queue(broker_url: str, queue: str) -> None:
    """Delete this test's queue (tasks left on it would never be consumed anyway)."""
    import kombu

    with kombu.Connection(broker_url) as conn:
        conn.default_channel.queue_delete(queue)


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    """Span ids from span's parent up to the root of what was received."""
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span.span_id)
    return chain


def one(spans: list[ReceivedSpan], **match: Any) -> ReceivedSpan:
    """The single span whose fields equal `match`."""
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} spans match {match}: {[(s.service_name, s.name) for s in spans]}"
    return found[0]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


@pytest.fixture
def make_cluster(tmp_path: Path, receiver: OtlpReceiver) -> Iterator[Any]:
    """make_cluster(broker="redis"|"amqp", **env) -> a Cluster; stopped, workers included, after the test."""
    clusters: list[Cluster] = []

    def make(broker: str = "redis", **env: str) -> Cluster:
        if broker == "redis":
            require_service("127.0.0.1", 6379, "Redis")
        else:
            require_service("127.0.0.1", 5672, "RabbitMQ")
        cluster = Cluster(tmp_path, receiver, BROKER_URL if broker == "redis" else AMQP_URL, **env)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()


# --------------------------------------------------------------------------- real workers


@pytest.mark.services
@pytest.mark.slow
def test_two_workers_run_40_async_executions_each_in_one_trace_from_request_to_steps(make_cluster):
    cluster = make_cluster()
    flow = cluster.save_flow({
        "name": f"scale-{uuid.uuid4().hex[:8]}",
        "steps": [
            {"name": "hello", "type": "template", "template": "hello"},
            {"name": "pause", "type": "sleep", "seconds": 0.1, "after": ["hello"]},
        ],
        "outputs": {"said": "${steps.hello.output}"},
    })
    cluster.start_worker("w1")
    cluster.start_worker("w2")

    with ThreadPoolExecutor(max_workers=40) as pool:
        submitted = list(pool.map(lambda i: cluster.submit(flow, request_id=f"scale-{i}-{uuid.uuid4().hex[:6]}"),
                                  range(40)))
    assert {e["status"] for e in submitted} <= {"pending", "running", "succeeded"}
    ids = [e["id"] for e in submitted]

    def all_finished() -> list[dict[str, Any]] | None:
        rows = [cluster.execution(execution_id) for execution_id in ids]
        return rows if all(row["status"] in ("succeeded", "failed", "cancelled") for row in rows) else None

    try:
        rows = wait_until(all_finished, timeout=120, interval=0.5, message="40 executions to finish")
    except AssertionError:
        raise AssertionError(cluster.logs()) from None
    assert [row["status"] for row in rows] == ["succeeded"] * 40, [(r["status"], r["error"]) for r in rows]
    assert all(row["outputs"] == {"said": "hello"} for row in rows)

    # A sync execution still runs in the request, in the gunicorn worker, not on a Celery worker.
    sync = cluster.submit(flow, request_id=f"sync-{uuid.uuid4().hex[:6]}", wait=True)
    assert (sync["status"], sync["outputs"]) == ("succeeded", {"said": "hello"})

    runners = cluster.runners()
    ran_on = [cluster.worker_of(_runner_pid(runners[execution_id])) for execution_id in ids]
    assert set(ran_on) == {"w1", "w2"}, ran_on
    assert cluster.worker_of(_runner_pid(runners[sync["id"]])) is None
    assert _parent_pid(_runner_pid(runners[sync["id"]])) == cluster.service.process.pid  # a gunicorn worker

    by_trace = {row["trace_id"]: row for row in rows}
    assert len(by_trace) == 40, "each execution has its own trace"

    def traces_complete(spans: list[ReceivedSpan]) -> bool:
        steps = {s.trace_id for s in spans if s.name == "step pause"}
        return set(by_trace) <= steps

    spans = cluster.receiver.wait_for(traces_complete, timeout=30)
    for trace_id, row in by_trace.items():
        trace = [s for s in spans if s.trace_id == trace_id]
        by_id = {s.span_id: s for s in trace}
        server = one(trace, kind="SERVER")
        assert (server.service_name, server.parent_id) == ("flowexec-service", "")
        publish = one(trace, name=PUBLISH_SPAN)
        run = one(trace, name=RUN_SPAN)
        flow_span = one(trace, name=f"execute_flow {flow}")
        steps = [one(trace, name="step hello"), one(trace, name="step pause")]
        assert (publish.service_name, publish.kind) == ("flowexec-service", "PRODUCER")
        assert (run.service_name, run.kind) == ("flowexec-worker", "CONSUMER")
        assert {flow_span.service_name} | {s.service_name for s in steps} == {"flowexec-worker"}

        # One connected tree: every span reaches the server span; the queue hop is publish -> run.
        assert all(s is server or server.span_id in _ancestors(s, by_id) for s in trace)
        assert run.parent_id == publish.span_id
        assert run.span_id in _ancestors(flow_span, by_id)
        assert all(step.parent_id == flow_span.span_id for step in steps)
        assert flow_span.attributes["flow.execution.id"] == row["id"]
        # request_id and baggage crossed the queue: the worker's spans carry them.
        for span in (run, flow_span, *steps):
            assert span.attributes["request_id"] == row["request_id"], span.name
            assert span.attributes["client"] == "scale-test", span.name


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize(("broker", "pool"), [("redis", "solo"), ("redis", "prefork"), ("amqp", "solo")])
def test_execution_whose_worker_is_killed_mid_step_ends_failed_with_the_reason(make_cluster, broker, pool):
    # Redis: a short visibility timeout brings a killed worker's unacknowledged task back within
    # seconds. RabbitMQ requeues it as soon as the dead worker's connection drops.
    cluster = make_cluster(broker, FLOWEXEC_BROKER_VISIBILITY_TIMEOUT="3", FLOWEXEC_STALE_AFTER="8")
    flow = cluster.save_flow({
        "name": f"scale-nap-{uuid.uuid4().hex[:8]}",
        "steps": [
            {"name": "warmup", "type": "sleep", "seconds": 0.1},
            {"name": "nap", "type": "sleep", "seconds": 30, "timeout": 120, "after": ["warmup"]},
        ],
    })
    victim = cluster.start_worker("victim", pool=pool)
    execution_id = cluster.submit(flow, request_id=f"kill-{uuid.uuid4().hex[:6]}")["id"]

    def napping() -> dict[str, Any] | None:
        row = cluster.execution(execution_id)
        nap = [s for s in row["steps"] if s["name"] == "nap" and s["status"] == "running"]
        return row if row["status"] == "running" and nap else None

    wait_until(napping, timeout=60, interval=0.1, message="the long step to start")
    runner = cluster.runners()[execution_id]
    pid = _runner_pid(runner)
    assert pid == victim.pid if pool == "solo" else cluster.worker_of(pid) == "victim"
    cluster.start_worker("survivor", pool=pool)
    os.kill(pid, signal.SIGKILL)
    if pool == "solo":
        victim.wait(timeout=10)  # reaped, as an init system would: the pid no longer exists

    def finished() -> dict[str, Any] | None:
        row = cluster.execution(execution_id)
        return row if row["status"] != "running" else None

    try:
        row = wait_until(finished, timeout=45, interval=0.2, message="the killed worker's execution to finish")
    except AssertionError:
        raise AssertionError(cluster.logs()) from None
    assert row["status"] == "failed", row
    assert runner in row["error"]
    assert "died while running it (task redelivered)" in row["error"] or "stopped before it finished" in row[
        "error"
    ], row["error"]
    assert {s["name"]: s["status"] for s in row["steps"]} == {"warmup": "succeeded", "nap": "failed"}


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_the_same_task_delivered_twice_to_two_workers_runs_the_flow_once(make_cluster, broker):
    from celery import Celery

    cluster = make_cluster(broker)
    flow = cluster.save_flow({
        "name": f"scale-twice-{uuid.uuid4().hex[:8]}",
        "steps": [
            {"name": "hello", "type": "template", "template": "hello"},
            {"name": "pause", "type": "sleep", "seconds": 1, "after": ["hello"]},
        ],
    })
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    execution = cluster.submit(flow, request_id=f"twice-{uuid.uuid4().hex[:6]}")
    # The broker delivering the message again: the same task for the same execution, published again.
    publisher = Celery("duplicate", broker=cluster.broker_url)
    duplicate = publisher.send_task(TASK_NAME, args=[execution["id"]], queue=cluster.queue)
    publisher.close()

    row = wait_until(lambda: (r := cluster.execution(execution["id"]))["status"] == "succeeded" and r,
                     timeout=60, interval=0.2, message="the execution to succeed")
    assert [(s["name"], s["attempts"]) for s in row["steps"]] == [("hello", 1), ("pause", 1)]

    def both_deliveries_handled(spans: list[ReceivedSpan]) -> bool:
        runs = [s for s in spans if s.name == RUN_SPAN]
        return any(s.attributes.get("messaging.message.id") == duplicate.id for s in runs) and any(
            s.trace_id == row["trace_id"] for s in runs
        )

    spans = cluster.receiver.wait_for(both_deliveries_handled, timeout=30)
    runs_of_flow = [s for s in spans if s.name == f"execute_flow {flow}"]
    assert len(runs_of_flow) == 1, [(s.service_name, s.trace_id) for s in runs_of_flow]
    assert runs_of_flow[0].attributes["flow.execution.id"] == execution["id"]


@pytest.mark.services
@pytest.mark.slow
def test_whole_worker_killed_with_no_other_worker_is_failed_by_the_services_own_sweep(make_cluster):
    # No survivor and no request: only the service processes' periodic sweep can finish it.
    cluster = make_cluster("redis", FLOWEXEC_STALE_AFTER="4")
    flow = cluster.save_flow({
        "name": f"scale-alone-{uuid.uuid4().hex[:8]}",
        "steps": [{"name": "nap", "type": "sleep", "seconds": 60, "timeout": 120}],
    })
    victim = cluster.start_worker("alone", pool="solo")
    execution_id = cluster.submit(flow, request_id=f"alone-{uuid.uuid4().hex[:6]}")["id"]
    wait_until(lambda: cluster.runners().get(execution_id), timeout=60, interval=0.2, message="the run to start")
    runner = cluster.runners()[execution_id]
    victim.kill()
    victim.wait(timeout=10)

    def finished() -> tuple[str, str] | None:
        row = _row(cluster.service.database_url, execution_id)
        return row if row[0] != "running" else None

    status, error = wait_until(finished, timeout=20, interval=0.2, message="the service's sweep")
    assert status == "failed" and runner in error and "stopped before it finished" in error


@pytest.mark.services
@pytest.mark.slow
def test_8_clients_x_100_executions_through_celery_all_succeed(make_cluster):
    cluster = make_cluster("redis")
    flow = cluster.save_flow({
        "name": f"scale-800-{uuid.uuid4().hex[:8]}",
        "steps": [{"name": "hello", "type": "template", "template": "hello"}],
        "outputs": {"said": "${steps.hello.output}"},
    })
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.service.http = urllib3.PoolManager(retries=False, maxsize=8)

    def client(number: int) -> list[str]:
        return [cluster.submit(flow, request_id=f"c{number}-{i}")["id"] for i in range(100)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [execution_id for batch in pool.map(client, range(8)) for execution_id in batch]
    assert len(set(ids)) == 800

    def all_finished() -> dict[str, str] | None:
        statuses = _statuses(cluster.service.database_url)
        return statuses if all(statuses.get(i) in ("succeeded", "failed", "cancelled") for i in ids) else None

    try:
        statuses = wait_until(all_finished, timeout=240, interval=1, message="800 executions to finish")
    except AssertionError:
        raise AssertionError(cluster.logs()) from None
    assert sorted({statuses[i] for i in ids}) == ["succeeded"]


def _query(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30) as conn:
            return conn.execute(query, params).fetchall()
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute(query.replace("?", "%s"), params).fetchall()


def _statuses(database_url: str) -> dict[str, str]:
    return {str(uuid.UUID(str(pk))): status
            for pk, status in _query(database_url, "SELECT id, status FROM executions_execution")}


def _row(database_url: str, execution_id: str) -> tuple[str, str]:
    key = uuid.UUID(execution_id).hex if database_url.startswith("sqlite") else execution_id
    ((status, error),) = _query(database_url, "SELECT status, error FROM executions_execution WHERE id = ?", key)
    return status, error


# --------------------------------------------------------------------------- the task in-process


@pytest.mark.django_db(transaction=True)
def test_task_delivered_twice_in_process_runs_the_flow_once(make_flow, spans):
    from executions import services, tasks
    from executions.models import Execution

    flow = make_flow(steps=[
        {"name": "hello", "type": "template", "template": "hi"},
        {"name": "pause", "type": "sleep", "seconds": 0.01, "after": ["hello"]},
    ])
    execution = services.execution_create(flow=flow, inputs={})
    first = tasks.run_execution.apply(args=[str(execution.pk)])
    second = tasks.run_execution.apply(args=[str(execution.pk)])
    assert (first.result, second.result) == (Execution.Status.SUCCEEDED, "duplicate")
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert sorted(execution.step_runs.values_list("name", "attempts")) == [("hello", 1), ("pause", 1)]
    assert len(spans.all_named(f"execute_flow {flow.name}")) == 1


@pytest.mark.django_db(transaction=True)
def test_redelivered_task_fails_an_execution_whose_worker_died(make_flow):
    from django.utils import timezone

    from executions import runner, services, tasks
    from executions.models import Execution, StepRun

    flow = make_flow(steps=[{"name": "nap", "type": "sleep", "seconds": 30}])
    execution = services.execution_create(flow=flow, inputs={})
    dead = f"{socket.gethostname()}:{_unused_pid()}:deadbeef"
    assert runner.runner_is_dead_here(dead)
    Execution.objects.filter(pk=execution.pk).update(
        status=Execution.Status.RUNNING, runner=dead, heartbeat_at=timezone.now(), started_at=timezone.now()
    )
    StepRun.objects.create(execution=execution, name="nap", type="sleep", attempts=1, started_at=timezone.now())

    result = tasks.run_execution.apply(args=[str(execution.pk)])

    assert result.result == Execution.Status.FAILED
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FAILED
    assert execution.error == f"interrupted: worker {dead} died while running it (task redelivered)"
    assert execution.step_runs.get().status == StepRun.Status.FAILED


def _unused_pid() -> int:
    """A pid no process has: a child that already exited and was reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid

"""The shipped gunicorn configuration under long runs, slow clients, SIGTERM and a killed worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.live import LiveService, start_service, wait_until

pytestmark = pytest.mark.slow

FINISHED = ("succeeded", "failed", "cancelled")


def save_flow(service: LiveService, *steps: dict[str, Any]) -> str:
    name = f"g-{uuid.uuid4().hex[:8]}"
    response = service.request("POST", "/api/flows/", json={"name": name, "steps": list(steps)})
    assert response.status in (200, 201), response.data
    return name


def submit(service: LiveService, flow: str, *, wait: bool) -> tuple[int, dict[str, Any]]:
    response = service.request("POST", "/api/executions/", json={"flow": flow, "wait": wait})
    return response.status, json.loads(response.data)


def rows(service: LiveService) -> dict[str, tuple[str, str]]:
    """Execution id -> (status, error), straight from the database: reading it sends no request."""
    path = service.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=30) as conn:
        found = conn.execute("SELECT id, status, error FROM executions_execution").fetchall()
    return {str(uuid.UUID(str(pk))): (status, error) for pk, status, error in found}


def worker_pids(service: LiveService) -> list[int]:
    children = Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.fixture
def sqlite_only() -> None:
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("reads the service's SQLite file directly")


def test_healthz_and_short_requests_answer_under_long_sync_runs_and_idle_connections(tmp_path, sqlite_only):
    service = start_service(tmp_path, server="gunicorn", workers=2,
                            env={"FLOWEXEC_SYNC_WAIT": "3", "FLOWEXEC_ASYNC_WORKERS": "8"})
    idle: list[socket.socket] = []
    try:
        flow = save_flow(service, {"name": "nap", "type": "sleep", "seconds": 6})
        # Slow clients: connections that never finish their headers.
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", int(service.url.rsplit(":", 1)[1])), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(sock)
        service.http = urllib3.PoolManager(retries=False, maxsize=16)
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = time.monotonic()
            long_runs = [pool.submit(submit, service, flow, wait=True) for _ in range(8)]
            wait_until(lambda: sum(s == "running" for s, _ in rows(service).values()) >= 4, timeout=20,
                       message="long runs to be running")
            for _ in range(10):
                began = time.monotonic()
                assert service.http.request("GET", service.url + "/healthz", timeout=2).status == 200
                assert service.request("GET", "/api/flows/").status == 200
                assert time.monotonic() - began < 2
            answers = [future.result(timeout=30) for future in long_runs]
        # Each sync request answered after about FLOWEXEC_SYNC_WAIT with the execution still running.
        assert {code for code, _ in answers} == {202}, answers
        assert time.monotonic() - started < 15
        ids = [body["id"] for _, body in answers]
        final = wait_until(lambda: (r := rows(service)) and all(r[i][0] in FINISHED for i in ids) and r,
                           timeout=30, message="the long runs to finish")
        assert [final[i][0] for i in ids] == ["succeeded"] * 8
        assert "WORKER TIMEOUT" not in service.log()
    finally:
        for sock in idle:
            sock.close()
        service.stop()


def test_each_gunicorn_worker_starts_itself_once(tmp_path):
    service = start_service(tmp_path, server="gunicorn", workers=2)
    try:
        pids = worker_pids(service)
        wait_until(lambda: service.log().count("tracing enabled") >= 2, timeout=20, message="both workers")
        assert len(pids) == 2
        assert service.log().count("tracing enabled") == 2, service.log()
    finally:
        service.stop()


def test_sigterm_finishes_running_executions_and_the_next_start_runs_the_queued_ones(tmp_path, sqlite_only):
    env = {"FLOWEXEC_ASYNC_WORKERS": "1", "FLOWEXEC_SHUTDOWN_GRACE": "10"}
    service = start_service(tmp_path / "first", server="gunicorn", workers=1, env=env)
    flow = save_flow(service, {"name": "nap", "type": "sleep", "seconds": 2})
    ids = [submit(service, flow, wait=False)[1]["id"] for _ in range(4)]
    wait_until(lambda: rows(service)[ids[0]][0] == "running", timeout=20, message="the first run")

    service.process.send_signal(signal.SIGTERM)
    service.process.wait(timeout=30)

    after_stop = rows(service)
    assert after_stop[ids[0]] == ("succeeded", ""), after_stop[ids[0]]
    assert [after_stop[i][0] for i in ids[1:]] == ["pending"] * 3  # never started: not failed, not lost

    restarted = start_service(tmp_path / "second", server="gunicorn", workers=1, env=env,
                              database_url=service.database_url)
    try:
        final = wait_until(lambda: (r := rows(restarted)) and all(r[i][0] in FINISHED for i in ids) and r,
                           timeout=40, message="the queued runs to finish after the restart")
        assert [final[i][0] for i in ids] == ["succeeded"] * 4, final
    finally:
        restarted.stop()


def test_a_killed_gunicorn_worker_s_execution_fails_with_the_reason_without_any_request(tmp_path, sqlite_only):
    service = start_service(tmp_path, server="gunicorn", workers=2, env={"FLOWEXEC_STALE_AFTER": "4"})
    try:
        flow = save_flow(service, {"name": "nap", "type": "sleep", "seconds": 60})
        execution_id = submit(service, flow, wait=False)[1]["id"]
        wait_until(lambda: rows(service)[execution_id][0] == "running", timeout=20, message="the run")
        owner = _runner_of(service, execution_id)
        os.kill(int(owner.split(":")[1]), signal.SIGKILL)
        killed_at = time.monotonic()
        status, error = wait_until(lambda: (r := rows(service)[execution_id])[0] in FINISHED and r,
                                   timeout=20, message="the killed worker's execution to finish")
        assert status == "failed" and "interrupted" in error and owner in error
        assert time.monotonic() - killed_at < 10  # a sweep about every FLOWEXEC_STALE_AFTER / 4
    finally:
        service.stop()


def _runner_of(service: LiveService, execution_id: str) -> str:
    path = service.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=30) as conn:
        (owner,) = conn.execute("SELECT runner FROM executions_execution WHERE id = ?",
                                (uuid.UUID(execution_id).hex,)).fetchone()
    return owner


def test_8_clients_x_100_sync_executions_all_succeed_and_none_is_lost(tmp_path):
    """On SQLite, and on PostgreSQL in the suite's PostgreSQL pass (the service's database follows DATABASE_URL)."""
    service = start_service(tmp_path, server="gunicorn", workers=2)
    service.http = urllib3.PoolManager(retries=False, maxsize=8)
    try:
        flow = save_flow(service, {"name": "hi", "type": "template", "template": "hello"})

        def client(number: int) -> list[tuple[int, str, str]]:
            return [(code, body["id"], body["status"])
                    for code, body in (submit(service, flow, wait=True) for _ in range(100))]

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = [answer for batch in pool.map(client, range(8)) for answer in batch]
        assert {(code, status) for code, _, status in answers} == {(201, "succeeded")}
        ids = {execution_id for _, execution_id, _ in answers}
        assert len(ids) == 800
        stored: set[str] = set()
        url: str | None = f"{service.url}/api/executions/?flow={flow}&status=succeeded&page_size=200"
        while url:
            page = json.loads(service.http.request("GET", url, headers=service.auth, timeout=30).data)
            stored |= {row["id"] for row in page["results"]}
            url = page["next"]
        assert stored == ids  # every one is stored, succeeded, and listed
    finally:
        service.stop()
    assert "Traceback" not in service.log()


def test_a_killed_gunicorn_master_s_worker_exits_and_its_execution_ends_with_a_reason(tmp_path, sqlite_only):
    env = {"FLOWEXEC_STALE_AFTER": "4", "FLOWEXEC_SHUTDOWN_GRACE": "2"}
    service = start_service(tmp_path / "first", server="gunicorn", workers=1, env=env)
    flow = save_flow(service, {"name": "nap", "type": "sleep", "seconds": 60})
    execution_id = submit(service, flow, wait=False)[1]["id"]
    wait_until(lambda: rows(service)[execution_id][0] == "running", timeout=20, message="the run")
    (worker,) = worker_pids(service)
    service.process.kill()
    service.process.wait(timeout=10)
    killed_at = time.monotonic()
    wait_until(lambda: not Path(f"/proc/{worker}").exists() or "Z" in _state(worker), timeout=30,
               message="the orphaned worker to exit")
    # The worker sees its parent gone, stops like on SIGTERM, and fails the run past the grace period.
    status, error = rows(service)[execution_id]
    assert status == "failed" and "interrupted: the service stopped" in error, (status, error)
    assert time.monotonic() - killed_at < 15


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"

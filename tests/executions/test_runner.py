"""The runner: one liveness rule, one heartbeat period, a heartbeat thread that calls what it is handed."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

from executions import runner


def _unused_pid() -> int:
    """A pid no process has: a child that already exited and was reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_runner_is_alive_while_it_reports_and_its_process_exists():
    now = datetime.now(UTC)
    elsewhere = "other-host.example:4242:cafe0001"

    def alive(owner: str, heartbeat: datetime | None) -> bool:
        return runner.is_alive(owner, heartbeat, now=now, stale_after=60)

    assert alive(elsewhere, now)
    assert not alive(elsewhere, now - timedelta(seconds=61))
    assert not alive(elsewhere, None)
    assert not alive("", now)
    assert alive(runner.runner_id(), now)
    assert not alive(f"{socket.gethostname()}:{_unused_pid()}:deadbeef", now)


def test_one_heartbeat_period_four_beats_per_stale_after_with_a_floor():
    assert runner.heartbeat_period(60) == 15
    assert runner.heartbeat_period(1) == runner.MIN_HEARTBEAT_SECONDS


def test_heartbeat_thread_calls_its_function_every_period_until_stopped():
    calls = threading.Semaphore(0)
    heartbeat = runner.Heartbeat(calls.release, 0.01).start()
    try:
        assert all(calls.acquire(timeout=5) for _ in range(3))
    finally:
        heartbeat.stop()
    assert not heartbeat.thread.is_alive()


def test_an_execution_is_reported_while_any_holder_still_owns_it():
    with runner.owning("e-1"):
        runner.hold("e-1")
        runner.release("e-1")
        assert "e-1" in runner.active_ids()
    assert "e-1" not in runner.active_ids()

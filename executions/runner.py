"""This process as a runner of executions: its identity, the liveness rule, and its heartbeat thread.

A running execution carries the runner that owns it and when that runner last reported. A
runner that crashed stops reporting (or its pid is gone), so its executions can be told apart
from live ones. Pure Python: the heartbeat thread calls whatever function it is handed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

logger = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()
# Shortest pause between heartbeats, whatever FLOWEXEC_STALE_AFTER says.
MIN_HEARTBEAT_SECONDS = 0.5

_lock = threading.Lock()
_active: dict[str, int] = {}
_runner_id = ""
_runner_pid = 0


def runner_id() -> str:
    """Return `host:pid:nonce` for this process (recomputed after a fork)."""
    global _runner_id, _runner_pid
    if _runner_pid != os.getpid():
        _runner_pid = os.getpid()
        _runner_id = f"{HOSTNAME}:{_runner_pid}:{uuid.uuid4().hex[:8]}"
    return _runner_id


def runner_is_dead_here(runner: str) -> bool:
    """True when `runner` names a process on this host that no longer exists."""
    host, _, rest = runner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOSTNAME or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return runner != runner_id()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def is_alive(runner: str, heartbeat_at: datetime | None, *, now: datetime, stale_after: float) -> bool:
    """The one liveness rule: a runner is alive while it reported within stale_after and is no dead process here."""
    if not runner or runner_is_dead_here(runner):
        return False
    return heartbeat_at is not None and heartbeat_at >= now - timedelta(seconds=stale_after)


def heartbeat_period(stale_after: float) -> float:
    """Seconds between heartbeats: four per stale_after, so one late beat never looks like a death."""
    return max(stale_after / 4, MIN_HEARTBEAT_SECONDS)


def active_ids() -> list[str]:
    """Ids of executions this process owns right now (queued here, or running)."""
    with _lock:
        return list(_active)


def hold(execution_id: str) -> None:
    """Count an execution as owned by this process, so the heartbeat reports it."""
    with _lock:
        _active[execution_id] = _active.get(execution_id, 0) + 1


def release(execution_id: str) -> None:
    """Stop reporting for an execution once this process is done with it."""
    with _lock:
        count = _active.get(execution_id, 0) - 1
        if count > 0:
            _active[execution_id] = count
        else:
            _active.pop(execution_id, None)


@contextmanager
def owning(execution_id: str) -> Iterator[None]:
    """Own an execution for the duration of the block."""
    hold(execution_id)
    try:
        yield
    finally:
        release(execution_id)


class Heartbeat:
    """A daemon thread that calls `beat` every `period` seconds until stopped."""

    def __init__(self, beat: Callable[[], object], period: float, *, name: str = "flowexec-heartbeat") -> None:
        self.beat = beat
        self.period = period
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Heartbeat:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopped.wait(self.period):
            # Boundary: the heartbeat must survive a database hiccup and try again next period.
            try:
                self.beat()
            except Exception:
                logger.warning("heartbeat failed; retrying in %.1fs", self.period, exc_info=True)

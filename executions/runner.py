"""This process's identity as a runner of executions, and its heartbeat.

A running execution carries the runner that owns it and when that runner last reported. A
runner that crashed stops reporting, so its executions can be told apart from live ones and
finished as failed (services.execution_fail_stale) instead of staying `running` forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()
_lock = threading.Lock()
_active: dict[str, int] = {}
_heartbeat: threading.Thread | None = None
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


def active_ids() -> list[str]:
    """Ids of executions this process owns right now."""
    with _lock:
        return list(_active)


def hold(execution_id: str) -> None:
    """Start reporting for an execution this process owns (queued here, or running)."""
    with _lock:
        _active[execution_id] = _active.get(execution_id, 0) + 1
    _ensure_heartbeat()


def release(execution_id: str) -> None:
    """Stop reporting for an execution once this process is done with it."""
    with _lock:
        _active[execution_id] -= 1
        if not _active[execution_id]:
            del _active[execution_id]


@contextmanager
def owning(execution_id: str) -> Iterator[None]:
    """Keep an execution's heartbeat going while this process owns it."""
    hold(execution_id)
    try:
        yield
    finally:
        release(execution_id)


def _ensure_heartbeat() -> None:
    global _heartbeat
    with _lock:
        if _heartbeat is not None and _heartbeat.is_alive():
            return
        _heartbeat = threading.Thread(target=_beat_forever, name="flowexec-heartbeat", daemon=True)
        _heartbeat.start()


def _beat_forever() -> None:
    """Report for owned executions and sweep for dead runners; end when this process owns none."""
    global _heartbeat
    from django.db import connection

    from executions import conf, services

    interval = max(float(conf.get("FLOWEXEC_STALE_AFTER")) / 4, 0.5)
    while True:
        time.sleep(interval)  # a period between beats, not synchronisation
        with _lock:
            if not _active:
                _heartbeat = None  # hold() starts a new one when there is work again
                return
        # Boundary: the heartbeat thread must survive a database hiccup and try again.
        try:
            services.execution_heartbeat(execution_ids=active_ids())
            services.execution_fail_stale()
        except Exception:
            logger.warning("heartbeat failed; retrying in %.1fs", interval, exc_info=True)
        finally:
            connection.close()

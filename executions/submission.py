"""Where an execution runs: inline in the caller's thread, on this process's pool, or on Celery workers.

Sync API requests run on the pool too and wait for it only up to FLOWEXEC_SYNC_WAIT, so long work
never runs inside a request that a worker timeout could kill; only a flow whose every step is pure
and instant (engine.instant) runs in the request's thread, having nothing to wait for. The pool stops gracefully: queued
executions that never started stay `pending` (a live runner, or the next start, adopts them),
running ones get FLOWEXEC_SHUTDOWN_GRACE seconds to finish.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import close_old_connections

from executions import conf, runner, selectors, services
from executions.models import Execution

logger = logging.getLogger(__name__)

PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
SHUTDOWN_INTERRUPTED = "interrupted: the service stopped and it did not finish within {grace:g}s"
# Slice of a bounded wait, so a stopping process wakes its waiting requests promptly.
WAIT_SLICE_SECONDS = 0.1

_lock = threading.Lock()
_idle = threading.Condition(_lock)  # notified whenever a pool run ends
_pool: ThreadPoolExecutor | None = None
_queued: dict[str, Future[Execution | None]] = {}
_running: set[str] = set()
_stopping = threading.Event()


def execution_submit(
    *,
    flow: str,
    inputs: Mapping[str, Any],
    wait: bool = True,
    inline: bool = False,
    client: str = Execution.Client.API,
    request_id: str = "",
    user_agent: str = "",
    user: AbstractBaseUser | None = None,
) -> Execution:
    """Create an execution and run it: inline (to the end), or in the background, waited on up to a bound.

    `inline` runs it in the caller's thread (management commands, where no request timeout exists),
    as does `wait` for a flow of pure and instant steps only; otherwise `wait` waits up to
    FLOWEXEC_SYNC_WAIT for the pool and returns the execution as it is then, and no wait hands it
    to Celery when a broker is set, else to the pool. The execution comes
    back with its step runs, ready to show.
    """
    to_celery = not wait and not inline and bool(conf.get("FLOWEXEC_BROKER_URL"))
    stored = selectors.flow_get(name=flow)
    identity = {"inputs": inputs, "client": client, "request_id": request_id, "user_agent": user_agent,
                "user": user}
    # A sync run whose steps are all pure and instant takes microseconds: no wait to bound, no long
    # work to keep out of the request, so it runs here rather than paying a hand-off to the pool.
    if inline or (wait and services.flow_is_instant(stored)):
        return services.execution_run_here(flow=stored, **identity)
    execution = services.execution_create(flow=stored, owned=not to_celery, **identity)
    if to_celery:
        return _publish(execution)
    future = _enqueue(execution)
    if wait and future is not None and (finished := _wait(future, conf.seconds("FLOWEXEC_SYNC_WAIT"))):
        return finished  # the pool thread is done with it: its instance, steps included, is final
    # Still queued or running: the pool thread may be changing that instance, so read the row afresh.
    return selectors.execution_get(execution_id=execution.pk)


def _wait(future: Future[Execution | None], bound: float) -> Execution | None:
    """The finished execution, or None once `bound` seconds passed or this process started stopping."""
    deadline = time.monotonic() + bound
    while (remaining := deadline - time.monotonic()) > 0 and not _stopping.is_set():
        try:
            return future.result(timeout=min(remaining, WAIT_SLICE_SECONDS))
        except TimeoutError:
            continue
    return None


def _enqueue(execution: Execution) -> Future[Execution | None] | None:
    """Queue an execution on this process's pool; None when the process is stopping (it stays pending)."""
    execution_id = str(execution.pk)
    runner.hold(execution_id)  # reported by the heartbeat while it waits in the queue
    with _lock:
        if _stopping.is_set():
            runner.release(execution_id)
            return None
        # The caller's trace context (and baggage) goes with it to the pool thread.
        future = _in_process_pool().submit(contextvars.copy_context().run, _run_in_pool, execution)
        _queued[execution_id] = future
    return future


def _in_process_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=int(conf.get("FLOWEXEC_ASYNC_WORKERS")), thread_name_prefix="flowexec-async"
        )
    return _pool


def _run_in_pool(execution: Execution) -> Execution | None:
    """Run one queued execution (the submitter's instance: no need to read the row again)."""
    execution_id = str(execution.pk)
    with _lock:
        _queued.pop(execution_id, None)
        started = not _stopping.is_set()
        if started:
            _running.add(execution_id)
    # Boundary: a background job has no caller to report to; log, and never kill the pool thread.
    try:
        if started:
            return services.execution_run(execution=execution)
    except Exception:
        logger.exception("execution %s could not run", execution_id)
    finally:
        with _idle:
            _running.discard(execution_id)
            _idle.notify_all()
        runner.release(execution_id)
        close_old_connections()  # a pool thread lives on: keep its connection within CONN_MAX_AGE
    return None


def _publish(execution: Execution) -> Execution:
    """Send the execution to the Celery workers; if the broker cannot take it, finish it failed now."""
    # Lazy: Celery and kombu cost start-up time and memory, and matter only when a broker is set.
    from kombu.exceptions import OperationalError

    from executions import tasks

    try:
        # Bounded retries: a dead broker must answer the request in about a second, not hang it.
        tasks.run_execution.apply_async((str(execution.pk),), retry=True, retry_policy=PUBLISH_RETRY_POLICY)
    except OperationalError as exc:
        services.execution_fail(execution_id=execution.pk, reason=f"not queued: the broker is unreachable ({exc})")
        execution.refresh_from_db()
    # Queued: answered as created (pending); a worker may have started it already, the client follows it.
    return execution


def sweep() -> None:
    """One heartbeat of a serving process: report owned executions, fail dead runners' ones, adopt orphans."""
    services.execution_heartbeat(execution_ids=runner.active_ids())
    services.execution_fail_stale()
    resume_orphans()


def resume_orphans() -> int:
    """Run pending executions whose runner died before starting them (queued in a stopped process)."""
    if _stopping.is_set():
        return 0
    to_celery = bool(conf.get("FLOWEXEC_BROKER_URL"))
    resumed = 0
    for pk, owner in selectors.executions_orphaned(status=Execution.Status.PENDING):
        if not services.execution_adopt(execution_id=pk, previous_runner=owner, owned=not to_celery):
            continue  # another live runner adopted it first
        execution = Execution.objects.select_related("flow").get(pk=pk)
        if to_celery:
            _publish(execution)
        else:
            _enqueue(execution)
        resumed += 1
    if resumed:
        logger.info("resumed %d pending execution(s) left by a stopped runner", resumed)
    return resumed


def begin_stop() -> None:
    """Stop taking new work: queued executions will not start, and waiting requests return now."""
    _stopping.set()


def stop(grace: float | None = None) -> int:
    """Graceful stop: never-started executions stay pending, running ones get `grace` seconds, then fail.

    Returns how many were still running at the end of the grace period (failed as interrupted).
    """
    grace = conf.seconds("FLOWEXEC_SHUTDOWN_GRACE") if grace is None else grace
    begin_stop()
    with _lock:
        pool = _pool
        queued = dict(_queued)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    for execution_id, future in queued.items():
        if future.cancelled():
            runner.release(execution_id)  # not ours any more once we exit: adopted as an orphan
    with _idle:
        _idle.wait_for(lambda: not _running, timeout=grace)
        left = list(_running)
    for execution_id in left:
        services.execution_fail(execution_id=execution_id, reason=SHUTDOWN_INTERRUPTED.format(grace=grace))
    return len(left)


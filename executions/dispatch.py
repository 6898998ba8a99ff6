"""Where async executions run: an in-process bounded pool (embedded default) or Celery workers."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection
from django.utils import timezone

from executions import conf, runner
from executions.models import Execution

logger = logging.getLogger(__name__)

PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def submit(execution: Execution) -> None:
    """Queue an execution to run in the background; the caller's trace context goes with it."""
    if conf.get("FLOWEXEC_BROKER_URL"):
        _publish(execution)
        return
    # The pool belongs to this process: mark the row ours and keep it alive while it waits in the
    # queue, so a crash is detectable and a long queue is not.
    runner.hold(str(execution.pk))
    Execution.objects.filter(pk=execution.pk).update(runner=runner.runner_id(), heartbeat_at=timezone.now())
    # The threading instrumentation hands the caller's trace context to the pool thread.
    _in_process_pool().submit(_run_in_pool, execution.pk)


def _publish(execution: Execution) -> None:
    """Send the execution to the Celery workers; if the broker cannot take it, finish it failed now."""
    from kombu.exceptions import OperationalError

    from executions import services, tasks

    try:
        # Bounded retries: a dead broker must answer the request in about a second, not hang it.
        tasks.run_execution.apply_async(
            (str(execution.pk),), retry=True, retry_policy=PUBLISH_RETRY_POLICY
        )
    except OperationalError as exc:
        services.execution_fail(execution_id=execution.pk, reason=f"not queued: the broker is unreachable ({exc})")
    execution.refresh_from_db()


def _in_process_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=int(conf.get("FLOWEXEC_ASYNC_WORKERS")), thread_name_prefix="flowexec-async"
            )
        return _pool


def _run_in_pool(execution_id: object) -> None:
    from executions import services

    # Boundary: a background job has no caller to report to; log, and never kill the pool thread.
    try:
        services.execution_run(execution=Execution.objects.select_related("flow").get(pk=execution_id))
    except Exception:
        logger.exception("async execution %s could not run", execution_id)
    finally:
        runner.release(str(execution_id))
        connection.close()

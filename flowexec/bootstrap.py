"""Process start-up and stop, called only by the entry points, once per process.

Entry points: flowexec/wsgi.py and asgi.py (each gunicorn worker and runserver import one after
the fork), the Celery worker (flowexec/celery.py, in each worker process), and the management
commands that run flows. Django must be set up before this module is imported.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, close_old_connections

from executions import conf, runner, services, submission
from executions.checks import TAG
from tracing.instrumentation import instrument_django_process
from tracing.provider import flush_and_shutdown

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_started_pid = 0
_heartbeat: runner.Heartbeat | None = None


def start(service_name: str, *, serve: bool) -> bool:
    """Trace this process and start its heartbeat; a serving process also sweeps for dead runners.

    `serve` (service and worker processes): finish what crashed runners left and resume what a
    stopped one never started, now and every heartbeat. A management command only reports the
    executions it runs. Returns False when this process had already started (gunicorn imports
    the WSGI module in every worker; a second call must not run a second sweep).
    """
    global _started_pid, _heartbeat
    with _lock:
        if _started_pid == os.getpid():
            return False
        _started_pid = os.getpid()
    check_settings()
    instrument_django_process(service_name)
    beat = submission.sweep if serve else _report_owned
    if serve:
        _start_up_pass()
    _heartbeat = runner.Heartbeat(
        _closing_connections(beat), runner.heartbeat_period(conf.seconds("FLOWEXEC_STALE_AFTER"))
    ).start()
    return True


def check_settings() -> None:
    """Refuse to start on a bad FLOWEXEC_* setting (WSGI and Celery do not run Django's checks)."""
    errors = [message for message in checks.run_checks(tags=[TAG]) if message.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(str(error) for error in errors))


def stop(grace: float | None = None) -> int:
    """Graceful stop: running executions get the grace period; returns how many had to be failed."""
    left = submission.stop(grace)
    if _heartbeat is not None:
        _heartbeat.stop()
    # Lazy: the metrics and logs SDK parts are loaded only in processes that configured them.
    from tracing.log_export import shutdown_logs
    from tracing.metrics import shutdown_metrics

    shutdown_metrics()
    shutdown_logs()
    flush_and_shutdown()
    return left


def _report_owned() -> None:
    services.execution_heartbeat(execution_ids=runner.active_ids())


def _closing_connections(beat: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            beat()
        finally:
            # The heartbeat thread is no request: drop a connection that broke or aged meanwhile.
            close_old_connections()

    return run


def _start_up_pass() -> None:
    try:
        failed = services.execution_fail_stale()
        resumed = submission.resume_orphans()
    except DatabaseError:
        # Not migrated yet (first start): nothing can be stale.
        logger.info("skipping the start-up pass over executions: database not ready")
        return
    finally:
        close_old_connections()
    if failed:
        logger.warning("marked %d interrupted execution(s) failed at start-up", failed)
    if resumed:
        logger.info("resumed %d never-started execution(s) at start-up", resumed)

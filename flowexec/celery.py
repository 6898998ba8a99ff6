"""The Celery worker entry point: `celery -A flowexec worker` runs async executions.

`celery -A flowexec` finds the app here as `flowexec.celery.app` (the `flowexec` package itself
stays cheap to import: the CLI never loads Django or Celery). Configuration comes from the
CELERY_* block of flowexec/settings.py, read from FLOWEXEC_BROKER_URL and friends.

Each worker process starts itself through flowexec.bootstrap in `worker_process_init`, i.e. in the
prefork child after the fork (or in the solo pool's only process), never in the parent, whose
BatchSpanProcessor thread would not survive the fork: its own TracerProvider (service.name
`flowexec-worker`, Celery instrumented once), the start-up pass and the periodic sweep.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from flowexec.celery_app import app

__all__ = ["app"]

WORKER_SERVICE_NAME = "flowexec-worker"


@signals.worker_process_init.connect(weak=False)
def _start_worker_process(**_: Any) -> None:
    """Start this worker process: tracing, the start-up pass, the heartbeat and sweep."""
    import django

    django.setup()
    # Lazy: the bootstrap imports the models, which need django.setup() first.
    from flowexec import bootstrap

    _keep_connections()
    bootstrap.start(WORKER_SERVICE_NAME, serve=True)


def _keep_connections() -> None:
    """Keep this process's database connections across tasks, within FLOWEXEC_WORKER_CONN_MAX_AGE.

    A worker process runs one task after another, like a pool thread: reconnecting for each task
    (Celery's default, off through CELERY_DB_REUSE_MAX) costs more than a short execution. A
    connection that broke is closed at the task boundary, and one that went stale meanwhile (the
    database restarted, an idle timeout) is caught by the health check before the task's first query.
    """
    # Lazy: executions' settings need django.setup() first; connections exist only once set up.
    from django.db import connections

    from executions import conf

    for alias in connections:
        connections.settings[alias].update(
            CONN_MAX_AGE=conf.seconds("FLOWEXEC_WORKER_CONN_MAX_AGE"), CONN_HEALTH_CHECKS=True
        )


@signals.task_prerun.connect(weak=False)
@signals.task_postrun.connect(weak=False)
def _task_boundary(sender: Any = None, **_: Any) -> None:
    """Django's request-boundary rule for a task: drop a broken connection or one past its age."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run in the caller's process (apply()): its connections are the caller's business
    # Lazy: see above; this module is imported before Django is set up.
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_process_shutdown.connect(weak=False)
def _stop_worker_process(**_: Any) -> None:
    """Stop the heartbeat and export what this process still buffers (bounded)."""
    # Lazy: see above; this module is imported before Django is set up.
    from flowexec import bootstrap

    bootstrap.stop()

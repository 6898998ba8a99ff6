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

    bootstrap.start(WORKER_SERVICE_NAME, serve=True)


@signals.worker_process_shutdown.connect(weak=False)
def _stop_worker_process(**_: Any) -> None:
    """Stop the heartbeat and export what this process still buffers (bounded)."""
    # Lazy: see above; this module is imported before Django is set up.
    from flowexec import bootstrap

    bootstrap.stop()

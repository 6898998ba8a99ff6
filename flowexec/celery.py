"""The Celery app that runs async executions on workers: `celery -A flowexec worker`.

`celery -A flowexec` finds this module as `flowexec.celery` (the `flowexec` package itself stays
cheap to import: the CLI never loads Django or Celery). Configuration comes from the CELERY_* block
of flowexec/settings.py, read from FLOWEXEC_BROKER_URL and friends.

Each worker process traces itself: the TracerProvider (service.name `flowexec-worker`) and the
Celery instrumentation are set up in `worker_process_init`, i.e. in the prefork child after the
fork (or in the solo pool's only process), never in the parent, whose BatchSpanProcessor thread
would not survive the fork.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowexec.settings")

WORKER_SERVICE_NAME = "flowexec-worker"

app = Celery("flowexec", include=["executions.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")


@signals.worker_process_init.connect(weak=False)
def _trace_worker_process(**_: Any) -> None:
    """Give this worker process its own provider, instrument Celery, fail executions a crash left."""
    import django

    django.setup()
    from executions.startup import on_process_start

    on_process_start(WORKER_SERVICE_NAME)
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        # The run span continues the publisher's trace (and carries its baggage) from the headers.
        instrumentor.instrument()


@signals.worker_process_shutdown.connect(weak=False)
def _flush_worker_spans(**_: Any) -> None:
    """Export what this process still buffers before it exits (bounded, a dead backend never hangs it)."""
    from tracing.log_export import shutdown_logs
    from tracing.metrics import shutdown_metrics
    from tracing.provider import flush_and_shutdown

    shutdown_metrics()
    shutdown_logs()
    flush_and_shutdown()

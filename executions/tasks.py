"""Celery tasks: a thin adapter that runs an async execution on a worker, safe under redelivery.

The broker may deliver a task more than once (`acks_late`: a worker that dies before acknowledging
leaves the message to be redelivered; the Redis transport also redelivers after its visibility
timeout). Every delivery therefore looks at the row first:

- `pending`: run it. `services.execution_run` claims it with a conditional update, so of two
  concurrent deliveries exactly one runs the flow; the other returns.
- finished (`succeeded`, `failed`, `cancelled`): nothing to do.
- `running`, and its runner is alive (`runner.is_alive`, the one liveness rule): another delivery
  is running it; check again a heartbeat later (a retry), never run it a second time.
- `running`, and its runner is dead: finish it `failed` with the reason. Steps are not assumed
  safe to re-run, so it is not re-run.

A database error on that first look retries the task a heartbeat later: the row is `pending` with a
live publisher, so no sweep would ever pick it up, and dropping the task would leave it pending.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from executions import conf, runner, selectors, services
from executions.models import Execution
from flowexec.celery_app import app

logger = logging.getLogger(__name__)

WORKER_DIED = "interrupted: worker {runner} died while running it (task redelivered)"


@app.task(bind=True, name="executions.tasks.run_execution", acks_late=True, reject_on_worker_lost=True,
          max_retries=None, ignore_result=True)
def run_execution(self: Any, execution_id: str) -> str:
    """Run a pending execution to the end; on redelivery do nothing, or fail it when its worker died."""
    try:
        execution = selectors.execution_to_run(execution_id=execution_id)
    except Execution.DoesNotExist:
        logger.warning("execution %s does not exist; dropping its task", execution_id)
        return "missing"
    except DatabaseError as exc:
        check_again = runner.heartbeat_period(conf.seconds("FLOWEXEC_STALE_AFTER"))
        logger.warning("execution %s: database error before it started (%s); retrying in %.1fs", execution_id,
                       exc, check_again)
        close_old_connections()
        raise self.retry(countdown=check_again) from exc
    if execution.status == Execution.Status.PENDING:
        return services.execution_run(execution=execution).status
    if execution.is_finished:
        logger.info("execution %s already %s; redelivered task does nothing", execution_id, execution.status)
        return "duplicate"
    stale_after = conf.seconds("FLOWEXEC_STALE_AFTER")
    if runner.is_alive(execution.runner, execution.heartbeat_at, now=timezone.now(), stale_after=stale_after):
        check_again = runner.heartbeat_period(stale_after)
        logger.info("execution %s is running on %s; checking again in %.1fs", execution_id, execution.runner,
                    check_again)
        raise self.retry(countdown=check_again)
    services.execution_fail_orphan(execution_id=execution.pk, reason=WORKER_DIED.format(runner=execution.runner))
    return Execution.Status.FAILED

"""What a service or worker process does once at start: trace itself, fail executions a crash left."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


def on_process_start(service_name: str) -> None:
    """Instrument this process and finish executions whose runner died."""
    from tracing.instrumentation import instrument_django_process

    instrument_django_process(service_name)
    from executions import services

    try:
        failed = services.execution_fail_stale()
    except DatabaseError:
        # Not migrated yet (first start): nothing can be stale.
        logger.info("skipping the stale-execution sweep: database not ready")
        return
    finally:
        connection.close()
    if failed:
        logger.warning("marked %d interrupted execution(s) failed at start-up", failed)

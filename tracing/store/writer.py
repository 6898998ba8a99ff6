"""Batched, idempotent writes of span rows, and the background writer the OTLP receiver feeds."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Sequence

from django.db import connection

from tracing.store.rows import SpanRow

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_QUEUED_ROWS = 50_000
EXIT_FLUSH_SECONDS = 5.0


def write_rows(rows: Iterable[SpanRow]) -> None:
    """Insert rows in batches, ignoring spans already stored, then prune if it is time to."""
    # Imported here: tracing.provider loads the exporter before Django's app registry is ready.
    from tracing.models import Span
    from tracing.store.retention import maybe_prune

    Span.objects.bulk_create([Span(**row) for row in rows], batch_size=BATCH_SIZE, ignore_conflicts=True)
    maybe_prune()


def write_rows_in_thread(rows: Iterable[SpanRow]) -> bool:
    """write_rows for a background thread: close its DB connection afterwards, log and swallow errors."""
    try:
        write_rows(rows)
    except Exception:
        # Boundary: storing spans must never take down the exporting or writer thread; rows may be
        # a generator, so converting them fails here too rather than in the caller.
        logger.exception("could not store spans")
        return False
    finally:
        connection.close()
    return True


class SpanWriter:
    """A bounded queue of rows drained in batches by one daemon thread, started on first use."""

    def __init__(self, *, max_queued: int = MAX_QUEUED_ROWS, batch_size: int = BATCH_SIZE) -> None:
        self._max_queued = max_queued
        self._batch_size = batch_size
        self._rows: deque[SpanRow] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, rows: Sequence[SpanRow]) -> bool:
        """Queue all rows, or none when the queue is full (the caller answers 503)."""
        with self._cond:
            if len(self._rows) + len(rows) > self._max_queued:
                return False
            self._rows.extend(rows)
            self._ensure_thread()
            self._cond.notify_all()
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row is written; False if that took longer than timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._rows and not self._in_flight, timeout)

    def _ensure_thread(self) -> None:
        # A forked gunicorn worker inherits the object but not the thread.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        if self._thread is None:
            atexit.register(self.flush, EXIT_FLUSH_SECONDS)
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="flowexec-span-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._rows)
                batch = [self._rows.popleft() for _ in range(min(len(self._rows), self._batch_size))]
                self._in_flight = len(batch)
            write_rows_in_thread(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()


span_writer = SpanWriter()

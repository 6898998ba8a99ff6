"""The embedded store's log lines: records logged inside a trace, written in batches off the request path."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import trace

logger = logging.getLogger("flowexec.tracing")

MAX_QUEUE = 10_000
FLUSH_INTERVAL_SECONDS = 0.5
MAX_MESSAGE_CHARS = 8192
PRUNE_EVERY_SECONDS = 600


class StoreLogHandler(logging.Handler):
    """Queue records that carry a span context (bounded, dropping beyond it); a daemon thread writes them."""

    def __init__(self, level: int = logging.INFO, *, max_queue: int = MAX_QUEUE, start: bool = True) -> None:
        super().__init__(level=level)
        self._queue: deque[dict[str, Any]] = deque()
        self._max_queue = max_queue
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._failing = False
        self._last_prune = 0.0
        self.dropped = 0
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="flowexec-log-store", daemon=True)
            self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record if it was logged inside a span; never blocks on the database."""
        if threading.current_thread() is self._thread:
            return  # the writer's own database logging must not feed itself
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            return
        # Lazy: this handler is built while logging is configured, before our other modules load.
        from tracing.redaction import active_mask

        # Masked here, in the logging thread, where the execution's secret values are active.
        message = active_mask(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}\n{active_mask(self.formatException(record.exc_info))}"
        line = {
            "trace_id": trace.format_trace_id(span_context.trace_id),
            "span_id": trace.format_span_id(span_context.span_id),
            "time": datetime.fromtimestamp(record.created, tz=UTC),
            "level": record.levelname[:8],
            "logger": record.name[:255],
            "message": message[:MAX_MESSAGE_CHARS],
        }
        with self._queue_lock:
            if len(self._queue) >= self._max_queue:
                self.dropped += 1
                return
            self._queue.append(line)

    def flush(self) -> None:
        """Write everything queued now (the writer thread does this every FLUSH_INTERVAL_SECONDS)."""
        from django.db import DatabaseError, connection

        # Lazy: the model needs Django's app registry, not ready yet when logging is configured.
        from tracing.models import LogLine

        with self._write_lock:
            with self._queue_lock:
                lines = list(self._queue)
                self._queue.clear()
            if not lines:
                return
            try:
                LogLine.objects.bulk_create([LogLine(**line) for line in lines], batch_size=500)
                self._prune()
                if self._failing:
                    logger.warning("log line store recovered")
                self._failing = False
            except DatabaseError as exc:
                if not self._failing:
                    logger.warning("log line store failing (%s); dropping lines until it recovers", exc)
                self._failing = True
            finally:
                if threading.current_thread() is self._thread:
                    connection.close()

    def _prune(self) -> None:
        """Keep log lines as long as spans (FLOWEXEC_SPAN_RETENTION_DAYS)."""
        if time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        # Lazy: the model needs Django's app registry (see flush); settings are read at call time.
        from tracing import conf
        from tracing.models import LogLine

        self._last_prune = time.monotonic()
        cutoff = datetime.now(tz=UTC) - timedelta(days=int(conf.get("FLOWEXEC_SPAN_RETENTION_DAYS")))
        LogLine.objects.filter(time__lt=cutoff).delete()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_SECONDS)
            self.flush()


_handler: StoreLogHandler | None = None
_lock = threading.Lock()


def install_log_store() -> StoreLogHandler:
    """Add the store's handler to the root logger once per process, kept across Django's logging reconfiguration."""
    global _handler
    with _lock:
        if _handler is None:
            from opentelemetry.instrumentation.logging.handler import _overwrite_logging_config_fns

            _handler = StoreLogHandler()
            logging.getLogger().addHandler(_handler)
            # django.setup() runs dictConfig again, which drops root handlers; this wrapper keeps ours.
            _overwrite_logging_config_fns(_handler)
        return _handler


def log_lines(trace_id: str, limit: int = 500) -> list[Any]:
    """The stored log lines of one trace in time order (at most limit)."""
    # Lazy: the model needs Django's app registry (see flush).
    from tracing.models import LogLine

    return list(LogLine.objects.filter(trace_id=trace_id).order_by("time", "id")[:limit])

"""What the trace, metric and log pipelines share (no Django): warn-once export and a bounded stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracing.config import OtlpConfig

logger = logging.getLogger("flowexec.tracing")

DEFAULT_STOP_TIMEOUT_SECONDS = 2.0

# Loggers the SDK's metric and log exporters write one line per failed batch to; WarnOnce reports instead.
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk._shared_internal",
)


def otlp_exporter_settings(otlp: OtlpConfig) -> dict[str, Any]:
    """endpoint, headers, timeout and compression as the SDK's OTLP exporters of every signal take them.

    Given all four, an exporter reads none of them from the environment.
    """
    if otlp.protocol == "grpc":
        from grpc import Compression as GrpcCompression

        grpc_compression = {"gzip": GrpcCompression.Gzip, "deflate": GrpcCompression.Deflate}
        return {
            "endpoint": otlp.endpoint,
            # gRPC metadata keys must be lower-case ("Metadata key 'Authorization' is invalid" otherwise).
            "headers": {key.lower(): value for key, value in otlp.headers.items()} or None,
            "timeout": otlp.timeout,
            "compression": grpc_compression.get(otlp.compression, GrpcCompression.NoCompression),
        }
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

    http_compression = {"gzip": HttpCompression.Gzip, "deflate": HttpCompression.Deflate}
    return {
        "endpoint": otlp.endpoint,
        "headers": dict(otlp.headers),
        "timeout": otlp.timeout,
        "compression": http_compression.get(otlp.compression, HttpCompression.NoCompression),
    }


class _ExportLogCapture(logging.Filter):
    """Swallow the SDK exporters' per-batch log lines while an export runs on this thread."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @contextmanager
    def capturing(self) -> Iterator[list[str]]:
        """Collect (instead of emitting) the exporter loggers' records on this thread."""
        messages: list[str] = []
        self._local.messages = messages
        try:
            yield messages
        finally:
            self._local.messages = None

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop and remember the record if this thread is inside an export."""
        messages = getattr(self._local, "messages", None)
        if messages is None or record.levelno >= logging.CRITICAL:
            return True
        messages.append(record.getMessage())
        return False


_capture = _ExportLogCapture()
_capture_lock = threading.Lock()
_captured_loggers: set[str] = set()
_failure_reported = threading.Event()


# Where the SDK's batch processors say "Queue full, dropping Span." (or LogRecord), on the emitting thread.
QUEUE_FULL_LOGGER = "opentelemetry.sdk._shared_internal"


class _QueueFullOnce(logging.Filter):
    """Let the SDK's "Queue full" warning through once per process, and not after a failing-export warning.

    While a backend is slow or down the SDK logs it again on every batch cycle from request threads;
    our own warning already says the process is dropping spans until the backend recovers.
    """

    def __init__(self) -> None:
        super().__init__()
        self._said = threading.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop repeats of the queue-full line."""
        if not record.getMessage().startswith("Queue full"):
            return True
        if _failure_reported.is_set() or self._said.is_set():
            return False
        self._said.set()
        return True


_queue_full_once = _QueueFullOnce()


def _install_capture(loggers: tuple[str, ...]) -> None:
    with _capture_lock:
        for name in set(loggers) - _captured_loggers:
            logging.getLogger(name).addFilter(_capture)
            _captured_loggers.add(name)
        queue_full = logging.getLogger(QUEUE_FULL_LOGGER)
        if _queue_full_once not in queue_full.filters:
            queue_full.addFilter(_queue_full_once)


def failure_reported() -> bool:
    """Whether any exporter in this process has already warned about a failing backend."""
    return _failure_reported.is_set()


class FailureReporter:
    """One warning when exporting to a target starts failing and one when it recovers, never one per batch."""

    def __init__(self, signal: str, target: str, *, loggers: tuple[str, ...] = EXPORTER_LOGGERS,
                 unit: str = "item(s)") -> None:
        self.signal = signal
        self.target = target
        self.unit = unit
        self._lock = threading.Lock()
        self._failing = False
        self._dropped = 0
        _install_capture(loggers)

    def run(self, export: Callable[[], bool], items: int) -> bool:
        """Call export() (True on success) with the SDK's failure lines captured; never raises."""
        with _capture.capturing() as messages:
            try:
                ok = export()
            except Exception as exc:  # boundary: exporting must never break the export thread or a request
                messages.append(f"{type(exc).__name__}: {exc}")
                ok = False
        with self._lock:
            if ok:
                if self._failing:
                    logger.warning("%s export to %s recovered; %d %s were dropped", self.signal, self.target,
                                   self._dropped, self.unit)
                self._failing, self._dropped = False, 0
                return True
            self._dropped += items
            if not self._failing:
                self._failing = True
                _failure_reported.set()
                reason = "; ".join(dict.fromkeys(messages)) or "exporter reported failure"
                logger.warning("%s export to %s failing (%s); dropping %s, not logging again until it recovers",
                               self.signal, self.target, reason, self.unit)
        return False

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Capture the SDK's lines around shutdown or flush too."""
        with _capture.capturing():
            yield


def stop_within(stop: Callable[[], object], timeout_seconds: float, what: str) -> bool:
    """Run stop() on a daemon thread and wait at most timeout_seconds: a dead backend never holds an exit."""
    finished = threading.Event()

    def run() -> None:
        try:
            stop()
        finally:
            finished.set()

    threading.Thread(target=run, name=f"flowexec-{what}-stop", daemon=True).start()
    if finished.wait(timeout_seconds):
        return True
    logger.warning("%s shutdown did not finish within %.1fs; remaining data dropped", what, timeout_seconds)
    return False

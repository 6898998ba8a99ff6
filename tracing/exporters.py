"""Span exporters by name (otlp, console, jaeger, extras): imported lazily, wrapped to warn once."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

logger = logging.getLogger("flowexec.tracing")

ExporterFactory = Callable[[], SpanExporter]

BUILTIN_EXPORTERS = ("otlp", "console", "jaeger")
OTLP_PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_OTLP_PROTOCOL = "http/protobuf"
# The SDK default is 10 s, retried with backoff inside that budget; a dead backend then holds the batch
# worker (and any final flush) that long. 3 s still allows one reconnect plus a retry.
DEFAULT_OTLP_TIMEOUT_SECONDS = 3.0
DEFAULT_OTLP_HTTP_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_OTLP_GRPC_ENDPOINT = "http://localhost:4317"

# Loggers the SDK exporters write per-batch retry/failure lines to; WarnOnceExporter reports instead.
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.jaeger.thrift",
    "opentelemetry.exporter.jaeger.thrift.send",
)


@dataclass(frozen=True)
class ExporterSpec:
    """A configured exporter: its name, where it sends, and whether it belongs behind a BatchSpanProcessor."""

    name: str
    exporter: SpanExporter
    batched: bool
    target: str
    # None: the SDK's OTEL_BSP_SCHEDULE_DELAY (5 s by default).
    schedule_delay_millis: int | None = None

    def describe(self) -> str:
        """e.g. "otlp(http/protobuf http://127.0.0.1:8000/v1/traces)"."""
        return f"{self.name}({self.target})" if self.target else self.name


LOCAL_SCHEDULE_DELAY_MILLIS = 500


def _env(*names: str) -> str:
    """The first non-empty of these environment variables, stripped, or ""."""
    return next((value.strip() for name in names if (value := os.environ.get(name, "")).strip()), "")


def otlp_protocol() -> str:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL; unknown values warn and fall back."""
    raw = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL").lower()
    if not raw:
        return DEFAULT_OTLP_PROTOCOL
    if raw not in OTLP_PROTOCOLS:
        logger.warning(
            "OTLP protocol %r is not supported (use one of %s); using %s",
            raw,
            ", ".join(OTLP_PROTOCOLS),
            DEFAULT_OTLP_PROTOCOL,
        )
        return DEFAULT_OTLP_PROTOCOL
    return raw


def _otlp_timeout() -> float | None:
    """None lets the exporter read a valid OTEL_EXPORTER_OTLP_*TIMEOUT; otherwise our bounded default."""
    raw = _env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    if not raw:
        return DEFAULT_OTLP_TIMEOUT_SECONDS
    try:
        if float(raw) > 0:
            return None
    except ValueError:
        pass
    logger.warning("OTLP timeout %r is not a positive number; using %.0fs", raw, DEFAULT_OTLP_TIMEOUT_SECONDS)
    return DEFAULT_OTLP_TIMEOUT_SECONDS


def otlp_exporter(*, endpoint: str | None = None, headers: Mapping[str, str] | None = None) -> tuple[SpanExporter, str]:
    """The OTLP exporter for the configured protocol and a description of where it sends.

    Endpoint and headers from the OTEL_EXPORTER_OTLP_* variables win (the SDK exporters read them, and for
    http/protobuf append /v1/traces to the generic endpoint); `endpoint` (a full traces URL) and `headers`
    apply only when those are unset. `endpoint` is an OTLP/HTTP URL, so it is not used for grpc.
    """
    protocol = otlp_protocol()
    env_endpoint = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    env_headers = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    use_headers = None if env_headers else (dict(headers) if headers else None)
    timeout = _otlp_timeout()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        target = env_endpoint or DEFAULT_OTLP_GRPC_ENDPOINT
        return GrpcExporter(headers=use_headers, timeout=timeout), f"grpc {target}"

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    if traces_endpoint := _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        target = traces_endpoint
    elif base := _env("OTEL_EXPORTER_OTLP_ENDPOINT"):
        target = f"{base.removesuffix('/')}/v1/traces"
    else:
        target = endpoint or DEFAULT_OTLP_HTTP_ENDPOINT
    use_endpoint = None if env_endpoint else endpoint
    exporter = HttpExporter(endpoint=use_endpoint, headers=use_headers, timeout=timeout)
    return exporter, f"http/protobuf {target}"


def console_exporter() -> SpanExporter:
    """Span JSON on stdout, one span per flush."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter(out=sys.stdout)


def build_exporter(
    name: str,
    *,
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    extra_exporters: Mapping[str, ExporterFactory] | None = None,
) -> ExporterSpec | None:
    """The exporter for one OTEL_TRACES_EXPORTER name, wrapped to warn once; None (warned) if unusable."""
    extra = extra_exporters or {}
    schedule_delay_millis = None
    if name in extra:
        exporter, batched, target = extra[name](), True, ""
        if not _env("OTEL_BSP_SCHEDULE_DELAY"):
            # A local write is cheap, and a newcomer opening the trace right after a run should see it whole.
            schedule_delay_millis = LOCAL_SCHEDULE_DELAY_MILLIS
    elif name == "otlp":
        exporter, target = otlp_exporter(endpoint=otlp_endpoint, headers=otlp_headers)
        batched = True
    elif name == "console":
        exporter, batched, target = console_exporter(), False, "stdout"
    elif name == "jaeger":
        # Lazy: the Jaeger compatibility step imports thrift, worth it only when selected.
        from tracing import jaeger

        try:
            exporter = jaeger.jaeger_exporter()
        except ImportError as exc:
            logger.warning("jaeger exporter unavailable, skipped: %s", exc)
            return None
        host, port = jaeger.agent_address()
        batched, target = True, f"udp {host}:{port}"
    elif name == "store":
        logger.warning("exporter 'store' needs the Django service (it writes to its database); skipped")
        return None
    else:
        known = sorted({*BUILTIN_EXPORTERS, "none", *extra})
        logger.warning("unknown trace exporter %r in OTEL_TRACES_EXPORTER (known: %s); skipped", name, known)
        return None
    wrapped = WarnOnceExporter(exporter, f"{name} {target}".strip())
    return ExporterSpec(name, wrapped, batched, target, schedule_delay_millis)


class _ExportLogCapture(logging.Filter):
    """Swallow the SDK exporters' per-batch log lines while WarnOnceExporter.export runs on this thread."""

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
_capture_installed = False
_capture_lock = threading.Lock()
_failure_reported = threading.Event()


def _install_capture() -> None:
    global _capture_installed
    with _capture_lock:
        if not _capture_installed:
            for name in EXPORTER_LOGGERS:
                logging.getLogger(name).addFilter(_capture)
            _capture_installed = True


def failure_reported() -> bool:
    """Whether any WarnOnceExporter in this process has already warned about a failing backend."""
    return _failure_reported.is_set()


class WarnOnceExporter(SpanExporter):
    """Wrap an exporter: never raise, warn once when exporting starts failing and once when it recovers."""

    def __init__(self, inner: SpanExporter, target: str) -> None:
        self.inner = inner
        self.target = target
        self._lock = threading.Lock()
        self._failing = False
        self._dropped = 0
        _install_capture()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export via the wrapped exporter; failures are counted, reported once, never raised."""
        with _capture.capturing() as messages:
            try:
                result = self.inner.export(spans)
            except Exception as exc:  # boundary: exporting must never break the batch worker or a request
                messages.append(f"{type(exc).__name__}: {exc}")
                result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                if self._failing:
                    logger.warning("trace export to %s recovered; %d span(s) were dropped", self.target, self._dropped)
                self._failing, self._dropped = False, 0
                return result
            self._dropped += len(spans)
            if not self._failing:
                self._failing = True
                _failure_reported.set()
                reason = "; ".join(dict.fromkeys(messages)) or "exporter reported failure"
                logger.warning(
                    "trace export to %s failing (%s); dropping spans, not logging again until it recovers",
                    self.target,
                    reason,
                )
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        with _capture.capturing():
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)

"""This process's LoggerProvider from a LogsConfig: records leave with their trace and span ids (no Django)."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from tracing import telemetry
from tracing.config import LogsConfig
from tracing.redaction import SecretsLogFilter

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import ReadableLogRecord

logger = logging.getLogger("flowexec.tracing")

@dataclass(frozen=True)
class LogsState:
    """What configure_logs did in this process."""

    enabled: bool
    provider: LoggerProvider | None
    handler: logging.Handler | None
    exporters: tuple[str, ...]
    description: str


_state: LogsState | None = None
_lock = threading.Lock()
_stopped = threading.Event()


class WarnOnceLogExporter(LogRecordExporter):
    """Wrap a log record exporter: warn once while failing, never raise."""

    def __init__(self, inner: LogRecordExporter, target: str) -> None:
        self.inner = inner
        self.reporter = telemetry.FailureReporter("log", target)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Export via the wrapped exporter; a failure is reported once and dropped."""
        ok = self.reporter.run(lambda: self.inner.export(batch) is LogRecordExportResult.SUCCESS, len(batch))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        with self.reporter.quiet():
            self.inner.shutdown()


def _otlp_exporter(config: LogsConfig) -> LogRecordExporter:
    """The SDK's OTLP log exporter, given every setting so it reads nothing from the environment."""
    settings = telemetry.otlp_exporter_settings(config.otlp)
    if config.otlp.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

        return GrpcExporter(**settings)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

    return HttpExporter(**settings)


def logger_provider_for(config: LogsConfig, resource: Resource) -> tuple[LoggerProvider | None, tuple[str, ...]]:
    """A LoggerProvider with a batch processor per configured exporter; None when there is none."""
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter

    processors = []
    used = []
    for name in config.exporters:
        if name == "otlp":
            exporter, target = _otlp_exporter(config), config.otlp.target
            used.append(f"otlp({target})")
        else:
            exporter, target = ConsoleLogRecordExporter(out=sys.stdout), "stdout"
            used.append("console")
        batch = config.batch
        # A bounded queue exported from a background thread: logging never waits on the backend.
        processors.append(
            BatchLogRecordProcessor(
                WarnOnceLogExporter(exporter, target),
                schedule_delay_millis=batch.schedule_delay_millis,
                max_export_batch_size=batch.max_export_batch_size,
                export_timeout_millis=batch.export_timeout_millis,
                max_queue_size=batch.max_queue_size,
            )
        )
    if not processors:
        return None, ()
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for processor in processors:
        provider.add_log_record_processor(processor)
    return provider, tuple(used)


def log_handler(provider: LoggerProvider) -> logging.Handler:
    """A logging handler that hands records to provider, with the current span's context (trace and span ids)."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    handler = LoggingHandler(logger_provider=provider)
    # Exported records mask a running execution's secret values, like the console's lines.
    handler.addFilter(SecretsLogFilter())
    return handler


def configure_logs(config: LogsConfig, resource: Resource) -> LogsState:
    """Export this process's log records (root logger) once per process, on the traces' resource."""
    global _state
    with _lock:
        if _state is not None:
            return _state
        if config.disabled:
            state = LogsState(False, None, None, (), "log export disabled (OTEL_SDK_DISABLED=true)")
        else:
            provider, used = logger_provider_for(config, resource)
            if provider is None:
                state = LogsState(False, None, None, (), "log export disabled (OTEL_LOGS_EXPORTER=none)")
            else:
                from opentelemetry.instrumentation.logging.handler import _overwrite_logging_config_fns

                handler = log_handler(provider)
                logging.getLogger().addHandler(handler)
                # django.setup() runs dictConfig again (get_wsgi_application does), which drops every root
                # handler; the maintained instrumentation's wrapper keeps this one across logging configs.
                _overwrite_logging_config_fns(handler)
                atexit.register(shutdown_logs)
                state = LogsState(True, provider, handler, used, f"log export enabled: exporters={','.join(used)}")
        logger.info("%s", state.description)
        _state = state
        return state


def shutdown_logs(timeout_seconds: float = telemetry.DEFAULT_STOP_TIMEOUT_SECONDS) -> None:
    """Bounded final export of the records configure_logs still buffers; runs once."""
    state = _state
    if state is None or state.provider is None or _stopped.is_set():
        return
    _stopped.set()
    if state.handler is not None:
        logging.getLogger().removeHandler(state.handler)
    provider = state.provider
    telemetry.stop_within(provider.shutdown, timeout_seconds, "logs")

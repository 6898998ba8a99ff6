"""This process's TracerProvider, exporters and propagators, built from a TracingConfig only (no Django)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import (
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
    Resource,
)
from opentelemetry.sdk.trace import Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import SpanKind

from tracing import exporters
from tracing.attributes import TRACER_NAME
from tracing.config import OTEL_SEMCONV_STABILITY_OPT_IN, TracingConfig
from tracing.propagation import install_propagators
from tracing.span_urls import redact_span_urls

logger = logging.getLogger("flowexec.tracing")

DEFAULT_FLUSH_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class TracingState:
    """What configure_tracing did in this process."""

    enabled: bool
    provider: TracerProvider | None
    exporters: tuple[str, ...]
    description: str


_state: TracingState | None = None
_owned_provider: TracerProvider | None = None
_lock = threading.Lock()
_shutdown_started = threading.Event()


def build_resource(config: TracingConfig) -> Resource:
    """The SDK's telemetry.sdk.* attributes, the configured ones, and a service.instance.id per provider.

    service.instance.id is a UUID per provider (so per process, per gunicorn or Celery worker), as the
    semantic conventions recommend: it tells apart the workers of one service.
    """
    return Resource(
        {
            TELEMETRY_SDK_LANGUAGE: "python",
            TELEMETRY_SDK_NAME: "opentelemetry",
            TELEMETRY_SDK_VERSION: sdk_version,
            SERVICE_INSTANCE_ID: str(uuid.uuid4()),
            **config.resource,
        }
    )


def build_sampler(config: TracingConfig) -> Sampler:
    """The configured sampler (names as OTEL_TRACES_SAMPLER defines them)."""
    ratio = 1.0 if config.sampler_arg is None else config.sampler_arg
    samplers: dict[str, Callable[[], Sampler]] = {
        "always_on": lambda: ALWAYS_ON,
        "always_off": lambda: ALWAYS_OFF,
        "traceidratio": lambda: TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: ParentBased(ALWAYS_ON),
        "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": lambda: ParentBased(TraceIdRatioBased(ratio)),
    }
    return samplers.get(config.sampler, samplers["parentbased_always_on"])()


def build_span_limits(config: TracingConfig) -> SpanLimits:
    """SpanLimits with every value given, so the SDK does not consult the environment itself."""
    limits = config.limits
    length = SpanLimits.UNSET if limits.max_span_attribute_length is None else limits.max_span_attribute_length
    return SpanLimits(
        max_attributes=limits.max_span_attributes,
        max_events=limits.max_events,
        max_links=limits.max_links,
        max_span_attributes=limits.max_span_attributes,
        max_event_attributes=limits.max_event_attributes,
        max_link_attributes=limits.max_link_attributes,
        max_attribute_length=length,
        max_span_attribute_length=length,
    )


def _span_processor(spec: exporters.ExporterSpec, config: TracingConfig) -> SpanProcessor:
    if not spec.batched:
        return SimpleSpanProcessor(spec.exporter)
    batch = config.batch
    return BatchSpanProcessor(
        spec.exporter,
        max_queue_size=batch.max_queue_size,
        schedule_delay_millis=batch.schedule_delay_millis or spec.schedule_delay_millis or 5000,
        max_export_batch_size=batch.max_export_batch_size or spec.max_export_batch_size or 512,
        export_timeout_millis=batch.export_timeout_millis,
    )


class SpanStartProcessor(SpanProcessor):
    """What every span gets at its start, before any other processor or exporter sees it.

    First the allowlisted W3C baggage keys become attributes (what opentelemetry-processor-baggage's
    BaggageSpanProcessor does with a key predicate; importing that package also imports its log processor
    and with it the logs SDK, ~26 M instructions (callgrind), about 4% of a CLI run). Then the URL attributes
    are redacted, the baggage's too. One processor, not two: every processor is called three times per span.
    """

    def __init__(self, baggage_keys: frozenset[str]) -> None:
        self.baggage_keys = baggage_keys

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Before the span's own attributes are set, as the contrib processor."""
        copied = False
        for key, value in baggage.get_all(parent_context).items():
            if key in self.baggage_keys:
                span.set_attribute(key, value)
                copied = True
        scope = span.instrumentation_scope
        # flowexec's own internal spans (flows and steps) start with flow.* attributes only: a URL comes from a
        # client or server span (the CLI's own, an instrumentation's), or from baggage.
        if copied or span.kind is not SpanKind.INTERNAL or scope is None or scope.name != TRACER_NAME:
            redact_span_urls(span)


def start_processor(config: TracingConfig) -> SpanProcessor:
    """The processor that adds config.baggage_keys to every span and redacts its URLs."""
    return SpanStartProcessor(frozenset(config.baggage_keys))


def build_provider(
    config: TracingConfig, factories: Mapping[str, exporters.ExporterFactory] | None = None
) -> TracingState:
    """A TracerProvider built from config (and the caller's own exporter factories), not installed globally."""
    provider = TracerProvider(
        sampler=build_sampler(config),
        resource=build_resource(config),
        span_limits=build_span_limits(config),
        # The SDK's own atexit shutdown is unbounded with a dead backend; flush_and_shutdown bounds it.
        shutdown_on_exit=False,
    )
    # First: no later processor or exporter sees a URL before it is redacted.
    provider.add_span_processor(start_processor(config))
    specs = [spec for name in config.exporters if (spec := exporters.build_exporter(name, config, factories))]
    for spec in specs:
        provider.add_span_processor(_span_processor(spec, config))
    description = (
        f"tracing enabled: service.name={config.service_name} "
        f"exporters={','.join(spec.describe() for spec in specs) or 'none'} "
        f"sampler={provider.sampler.get_description()}"
    )
    return TracingState(True, provider, tuple(spec.name for spec in specs), description)


def _opt_into_semantic_conventions(config: TracingConfig) -> None:
    """Hand config.semconv_opt_in to the contrib instrumentations, which read it from the environment only."""
    os.environ[OTEL_SEMCONV_STABILITY_OPT_IN] = config.semconv_opt_in


def _adopt(provider: TracerProvider, config: TracingConfig) -> TracingState:
    """Keep a provider someone else installed (opentelemetry-instrument's), adding what the contract needs."""
    provider.add_span_processor(start_processor(config))
    service = provider.resource.attributes.get(SERVICE_NAME)
    return TracingState(
        True,
        provider,
        (),
        f"tracing enabled: keeping the TracerProvider already installed (opentelemetry-instrument?), "
        f"service.name={service}, baggage attributes added, no exporters added",
    )


def configure_tracing(
    config: TracingConfig, factories: Mapping[str, exporters.ExporterFactory] | None = None
) -> TracingState:
    """Set up this process's tracing once (later calls return the first state) and log one line about it.

    `factories` build exporters by name ahead of the registry, for this call only (see build_exporter).
    """
    global _state, _owned_provider
    with _lock:
        if _state is not None:
            return _state
        propagators = ",".join(install_propagators(config)) or "none"
        _opt_into_semantic_conventions(config)
        current = trace.get_tracer_provider()
        if config.disabled:
            state = TracingState(False, None, (), "tracing disabled (OTEL_SDK_DISABLED=true)")
        elif isinstance(current, TracerProvider):
            adopted = _adopt(current, config)
            state = replace(adopted, description=f"{adopted.description}; propagators={propagators}")
        else:
            built = build_provider(config, factories)
            state = replace(built, description=f"{built.description} propagators={propagators}")
            trace.set_tracer_provider(built.provider)
            _owned_provider = built.provider
            atexit.register(flush_and_shutdown)
        logger.info("%s", state.description)
        _state = state
        return state


def shutdown_provider(provider: TracerProvider, timeout_seconds: float = DEFAULT_FLUSH_TIMEOUT_SECONDS) -> bool:
    """Flush and shut provider down on a daemon thread, waiting at most timeout_seconds; True if done.

    BatchSpanProcessor.force_flush ignores its timeout and shutdown joins its worker for up to 30 s, and
    with a dead backend each export retries for the exporter timeout; a short-lived process must not wait.
    """
    finished = threading.Event()

    def flush_then_shutdown() -> None:
        try:
            provider.force_flush(int(timeout_seconds * 1000))
            provider.shutdown()
        finally:
            finished.set()

    threading.Thread(target=flush_then_shutdown, name="flowexec-trace-flush", daemon=True).start()
    if finished.wait(timeout_seconds):
        return True
    if not exporters.failure_reported():
        logger.warning("trace export did not finish within %.1fs; remaining spans dropped", timeout_seconds)
    return False


def flush_and_shutdown(timeout_seconds: float = DEFAULT_FLUSH_TIMEOUT_SECONDS) -> None:
    """Bounded final flush of the provider configure_tracing created (CLI or worker exit); runs once."""
    provider = _owned_provider
    if provider is None or _shutdown_started.is_set():
        return
    _shutdown_started.set()
    shutdown_provider(provider, timeout_seconds)

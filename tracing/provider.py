"""This process's TracerProvider, exporters and propagators from the standard OTEL_* variables (no Django)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import (
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from tracing import exporters

logger = logging.getLogger("flowexec.tracing")

DEFAULT_PROPAGATORS = "tracecontext,baggage"
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


def sdk_disabled() -> bool:
    """OTEL_SDK_DISABLED=true (case-insensitive), as the spec defines it; anything else means enabled."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def build_resource(service_name: str) -> Resource:
    """service.name/version/instance.id defaults, overridden by OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.

    service.instance.id is a UUID per provider (so per process, per gunicorn or Celery worker), as the
    semantic conventions recommend: it tells apart the workers of one service.
    """
    # Lazy: importing tracing.provider must not need the flowexec package until a resource is built.
    from flowexec import __version__

    defaults = Resource.create(
        {SERVICE_NAME: service_name, SERVICE_VERSION: __version__, SERVICE_INSTANCE_ID: str(uuid.uuid4())}
    )
    # Resource.create lets the passed attributes win over the environment; the environment must win here.
    return defaults.merge(OTELResourceDetector().detect())


def span_limits() -> SpanLimits:
    """SpanLimits from OTEL_*_LIMIT; a non-integer value warns and falls back to the SDK defaults."""
    try:
        return SpanLimits()
    except ValueError as exc:
        logger.warning("ignoring span limit settings: %s", exc)
        return SpanLimits(
            max_attributes=128,
            max_events=128,
            max_links=128,
            max_span_attributes=128,
            max_event_attributes=128,
            max_link_attributes=128,
            max_attribute_length=SpanLimits.UNSET,
            max_span_attribute_length=SpanLimits.UNSET,
        )


def exporter_names(default_exporters: str) -> list[str]:
    """OTEL_TRACES_EXPORTER (else default_exporters) as a de-duplicated list; "none" contributes nothing."""
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip() or default_exporters
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    return [name for name in dict.fromkeys(names) if name != "none"]


def tracer_provider_for(
    service_name: str,
    *,
    default_exporters: str = "console",
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    baggage_keys: Iterable[str] = ("request_id", "client"),
    extra_exporters: Mapping[str, Callable[[], SpanExporter]] | None = None,
) -> TracingState:
    """Build a TracerProvider from the environment without installing it globally (tests use this)."""
    from opentelemetry.processor.baggage import BaggageSpanProcessor

    provider = TracerProvider(
        resource=build_resource(service_name),
        span_limits=span_limits(),
        # The SDK's own atexit shutdown is unbounded with a dead backend; flush_and_shutdown bounds it.
        shutdown_on_exit=False,
    )
    allowed = frozenset(baggage_keys)
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key in allowed))
    specs = []
    for name in exporter_names(default_exporters):
        spec = exporters.build_exporter(
            name, otlp_endpoint=otlp_endpoint, otlp_headers=otlp_headers, extra_exporters=extra_exporters
        )
        if spec is None:
            continue
        processor = (
            BatchSpanProcessor(spec.exporter, schedule_delay_millis=spec.schedule_delay_millis)
            if spec.batched
            else SimpleSpanProcessor(spec.exporter)
        )
        provider.add_span_processor(processor)
        specs.append(spec)
    service = provider.resource.attributes.get(SERVICE_NAME)
    description = (
        f"tracing enabled: service.name={service} "
        f"exporters={','.join(spec.describe() for spec in specs) or 'none'} "
        f"sampler={provider.sampler.get_description()}"
    )
    return TracingState(True, provider, tuple(spec.name for spec in specs), description)


def _propagator_names() -> list[str]:
    raw = os.environ.get("OTEL_PROPAGATORS", "").strip() or DEFAULT_PROPAGATORS
    return [name.strip() for name in raw.split(",") if name.strip()]


def build_propagator() -> tuple[TextMapPropagator, tuple[str, ...]]:
    """OTEL_PROPAGATORS as a composite; tracecontext is our strict W3C one; unknown names warn, skipped."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.util._importlib_metadata import entry_points

    # Lazy: like the SDK's own propagators above, loaded only when propagation is configured.
    from tracing.propagation import W3CTraceContextPropagator

    names = _propagator_names()
    if any(name.lower() == "none" for name in names):
        return CompositePropagator([]), ()
    propagators: list[TextMapPropagator] = []
    used: list[str] = []
    for name in dict.fromkeys(names):
        if name == "tracecontext":
            propagators.append(W3CTraceContextPropagator())
        elif name == "baggage":
            propagators.append(W3CBaggagePropagator())
        elif found := list(entry_points(group="opentelemetry_propagator", name=name)):
            propagators.append(found[0].load()())
        else:
            logger.warning("unknown propagator %r in OTEL_PROPAGATORS; skipped", name)
            continue
        used.append(name)
    return CompositePropagator(propagators), tuple(used)


def install_propagators() -> tuple[str, ...]:
    """Set the global textmap from OTEL_PROPAGATORS; returns the names in use."""
    propagator, used = build_propagator()
    if "opentelemetry.propagate" not in sys.modules and [n for n in _propagator_names() if n not in used]:
        # opentelemetry.propagate parses OTEL_PROPAGATORS at import and raises on an unknown name; keep only
        # the names we accepted so that import (here or in an instrumentation) warns-and-falls-back instead.
        os.environ["OTEL_PROPAGATORS"] = ",".join(used) or "none"
    from opentelemetry import propagate

    propagate.set_global_textmap(propagator)
    return used


def configure_tracing(
    service_name: str,
    *,
    default_exporters: str = "console",
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    baggage_keys: Iterable[str] = ("request_id", "client"),
    extra_exporters: Mapping[str, Callable[[], SpanExporter]] | None = None,
) -> TracingState:
    """Set up this process's tracing once (later calls return the first state) and log one line about it."""
    global _state, _owned_provider
    with _lock:
        if _state is not None:
            return _state
        propagators = ",".join(install_propagators()) or "none"
        current = trace.get_tracer_provider()
        if sdk_disabled():
            state = TracingState(False, None, (), "tracing disabled (OTEL_SDK_DISABLED=true)")
        elif isinstance(current, TracerProvider):
            service = current.resource.attributes.get(SERVICE_NAME)
            state = TracingState(
                True,
                current,
                (),
                f"tracing enabled: keeping the TracerProvider already installed (opentelemetry-instrument?), "
                f"service.name={service}, no exporters added; propagators={propagators}",
            )
        else:
            built = tracer_provider_for(
                service_name,
                default_exporters=default_exporters,
                otlp_endpoint=otlp_endpoint,
                otlp_headers=otlp_headers,
                baggage_keys=baggage_keys,
                extra_exporters=extra_exporters,
            )
            state = TracingState(
                True, built.provider, built.exporters, f"{built.description} propagators={propagators}"
            )
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

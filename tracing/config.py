"""Tracing configuration as data: one frozen TracingConfig, built by a pure function from an environment mapping.

`tracing_config(environ, defaults)` is the only place that reads the standard ``OTEL_*`` variables (through the
SDK's own constants); the builders in tracing.provider and tracing.exporters read nothing but its result, so a
test builds a provider from a TracingConfig without touching os.environ. No Django here: the CLI uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote_plus

from opentelemetry.environment_variables import OTEL_PROPAGATORS, OTEL_TRACES_EXPORTER
from opentelemetry.sdk import environment_variables as sdk_env
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION

logger = logging.getLogger("flowexec.tracing")

# Read by the contrib HTTP instrumentations when they are first instrumented (opentelemetry.instrumentation._semconv).
OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
# The SDK removed these with its Jaeger exporter; the thrift exporter (tracing/jaeger.py) still honours them.
OTEL_EXPORTER_JAEGER_AGENT_HOST = "OTEL_EXPORTER_JAEGER_AGENT_HOST"
OTEL_EXPORTER_JAEGER_AGENT_PORT = "OTEL_EXPORTER_JAEGER_AGENT_PORT"

OTLP_PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_OTLP_PROTOCOL = "http/protobuf"
# The SDK default is 10 s, retried with backoff inside that budget; a dead backend then holds the batch worker
# (and any final flush) that long. 3 s still allows one reconnect plus a retry.
DEFAULT_OTLP_TIMEOUT_SECONDS = 3.0
DEFAULT_OTLP_HTTP_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_OTLP_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_PROPAGATORS = ("tracecontext", "baggage")
DEFAULT_SAMPLER = "parentbased_always_on"
KNOWN_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
DEFAULT_JAEGER_AGENT = ("localhost", 6831)
# Stable HTTP semantic conventions (http.request.method, url.full, ...); "http/dup" emits old and new names.
DEFAULT_SEMCONV_OPT_IN = "http"


@dataclass(frozen=True)
class ProcessDefaults:
    """What one kind of process wants when the environment says nothing (service, CLI, worker, tests)."""

    service_name: str
    exporters: tuple[str, ...] = ("console",)
    # A full OTLP/HTTP traces URL and headers, used only when no OTEL_EXPORTER_OTLP_*ENDPOINT / *HEADERS is set.
    otlp_endpoint: str = ""
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    # Used when OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT is unset or invalid.
    otlp_timeout: float = DEFAULT_OTLP_TIMEOUT_SECONDS
    baggage_keys: tuple[str, ...] = ("request_id", "client")


@dataclass(frozen=True)
class OtlpConfig:
    """Where and how the `otlp` exporter sends."""

    protocol: str = DEFAULT_OTLP_PROTOCOL
    # http/protobuf: the full traces URL; grpc: the collector's URL (scheme decides TLS).
    endpoint: str = DEFAULT_OTLP_HTTP_ENDPOINT
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_OTLP_TIMEOUT_SECONDS
    compression: str = ""
    # True when the endpoint came from OTEL_EXPORTER_OTLP_*ENDPOINT rather than the process default.
    endpoint_from_environment: bool = False


@dataclass(frozen=True)
class BatchConfig:
    """BatchSpanProcessor settings (OTEL_BSP_*); schedule_delay_millis None means "not configured"."""

    schedule_delay_millis: int | None = None
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    export_timeout_millis: int = 30_000


@dataclass(frozen=True)
class LimitsConfig:
    """Span limits (OTEL_*_LIMIT); a length of None means unlimited."""

    max_span_attributes: int = 128
    max_events: int = 128
    max_links: int = 128
    max_event_attributes: int = 128
    max_link_attributes: int = 128
    max_span_attribute_length: int | None = None


@dataclass(frozen=True)
class TracingConfig:
    """Everything this process's tracing is built from."""

    disabled: bool = False
    resource: Mapping[str, str] = field(default_factory=dict)
    exporters: tuple[str, ...] = ()
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    jaeger_agent: tuple[str, int] = DEFAULT_JAEGER_AGENT
    sampler: str = DEFAULT_SAMPLER
    sampler_arg: float | None = None
    batch: BatchConfig = field(default_factory=BatchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    propagators: tuple[str, ...] = DEFAULT_PROPAGATORS
    baggage_keys: tuple[str, ...] = ("request_id", "client")
    semconv_opt_in: str = DEFAULT_SEMCONV_OPT_IN

    @property
    def service_name(self) -> str:
        """service.name of the resource."""
        return self.resource.get(SERVICE_NAME, "")


def tracing_config(environ: Mapping[str, str], defaults: ProcessDefaults) -> TracingConfig:
    """The configuration for this environment; bad values warn and fall back (never raise)."""
    env = _Env(environ)
    return TracingConfig(
        disabled=env.text(sdk_env.OTEL_SDK_DISABLED).lower() == "true",
        resource=MappingProxyType(_resource(env, defaults)),
        exporters=_exporters(env, defaults),
        otlp=_otlp(env, defaults),
        jaeger_agent=_jaeger_agent(env),
        sampler=(sampler := _sampler(env)),
        sampler_arg=_sampler_arg(env, sampler),
        batch=BatchConfig(
            schedule_delay_millis=env.integer(sdk_env.OTEL_BSP_SCHEDULE_DELAY, None),
            max_queue_size=env.integer(sdk_env.OTEL_BSP_MAX_QUEUE_SIZE, 2048),
            max_export_batch_size=env.integer(sdk_env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512),
            export_timeout_millis=env.integer(sdk_env.OTEL_BSP_EXPORT_TIMEOUT, 30_000),
        ),
        limits=_limits(env),
        propagators=env.names(OTEL_PROPAGATORS) or DEFAULT_PROPAGATORS,
        baggage_keys=tuple(defaults.baggage_keys),
        semconv_opt_in=environ.get(OTEL_SEMCONV_STABILITY_OPT_IN, DEFAULT_SEMCONV_OPT_IN),
    )


class _Env:
    """Typed reads of an environment mapping: empty means unset, bad values warn and give the default."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, *names: str) -> str:
        """The first non-empty of these variables, stripped, or ""."""
        return next((value.strip() for name in names if (value := self.environ.get(name, "")).strip()), "")

    def names(self, name: str) -> tuple[str, ...]:
        """A comma list, stripped, lower-cased, de-duplicated."""
        return tuple(dict.fromkeys(part.strip().lower() for part in self.text(name).split(",") if part.strip()))

    def integer(self, name: str, default: int | None) -> int | None:
        """A non-negative integer, else default (warned if set but invalid)."""
        raw = self.text(name)
        if not raw:
            return default
        if raw.isdigit():
            return int(raw)
        logger.warning("%s=%r is not a non-negative integer; using the default", name, raw)
        return default

    def seconds(self, *names: str) -> float | None:
        """A positive number of seconds from the first variable set, or None (warned if invalid)."""
        raw = self.text(*names)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value > 0:
            return value
        logger.warning("%s=%r is not a positive number of seconds; using the default", names[0], raw)
        return None


def _resource(env: _Env, defaults: ProcessDefaults) -> dict[str, str]:
    """Defaults, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME (the SDK's precedence)."""
    # Lazy: importing tracing.config must not need the flowexec package until a resource is built.
    from flowexec import __version__

    attributes = {SERVICE_NAME: defaults.service_name, SERVICE_VERSION: __version__}
    for item in env.text(sdk_env.OTEL_RESOURCE_ATTRIBUTES).split(","):
        key, sep, value = item.partition("=")
        if not item.strip():
            continue
        if not sep or not key.strip():
            logger.warning("ignoring malformed OTEL_RESOURCE_ATTRIBUTES entry %r", item)
            continue
        attributes[key.strip()] = unquote_plus(value).strip()
    if service := env.text(sdk_env.OTEL_SERVICE_NAME):
        attributes[SERVICE_NAME] = service
    return attributes


def _exporters(env: _Env, defaults: ProcessDefaults) -> tuple[str, ...]:
    """OTEL_TRACES_EXPORTER (else the process default); "none" contributes nothing."""
    names = env.names(OTEL_TRACES_EXPORTER) or tuple(defaults.exporters)
    return tuple(name for name in dict.fromkeys(names) if name != "none")


def _otlp(env: _Env, defaults: ProcessDefaults) -> OtlpConfig:
    """The OTLP exporter's settings; signal-specific (TRACES_) variables win over the generic ones."""
    from opentelemetry.util.re import parse_env_headers

    protocol = env.text(sdk_env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, sdk_env.OTEL_EXPORTER_OTLP_PROTOCOL).lower()
    if protocol and protocol not in OTLP_PROTOCOLS:
        logger.warning(
            "OTLP protocol %r is not supported (use one of %s); using %s",
            protocol,
            ", ".join(OTLP_PROTOCOLS),
            DEFAULT_OTLP_PROTOCOL,
        )
        protocol = ""
    protocol = protocol or DEFAULT_OTLP_PROTOCOL
    traces_endpoint = env.text(sdk_env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    base_endpoint = env.text(sdk_env.OTEL_EXPORTER_OTLP_ENDPOINT)
    if traces_endpoint or base_endpoint:
        # Per the OTLP exporter spec, only the generic endpoint gets the signal path appended (http/protobuf).
        endpoint = traces_endpoint or (
            f"{base_endpoint.removesuffix('/')}/v1/traces" if protocol == "http/protobuf" else base_endpoint
        )
    elif protocol == "grpc":
        # The process default is an OTLP/HTTP URL, which a gRPC exporter cannot use.
        endpoint = DEFAULT_OTLP_GRPC_ENDPOINT
    else:
        endpoint = defaults.otlp_endpoint or DEFAULT_OTLP_HTTP_ENDPOINT
    raw_headers = env.text(sdk_env.OTEL_EXPORTER_OTLP_TRACES_HEADERS, sdk_env.OTEL_EXPORTER_OTLP_HEADERS)
    headers = parse_env_headers(raw_headers, liberal=True) if raw_headers else dict(defaults.otlp_headers)
    timeout = env.seconds(sdk_env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, sdk_env.OTEL_EXPORTER_OTLP_TIMEOUT)
    return OtlpConfig(
        protocol=protocol,
        endpoint=endpoint,
        headers=MappingProxyType(headers),
        timeout=timeout or defaults.otlp_timeout,
        compression=env.text(
            sdk_env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, sdk_env.OTEL_EXPORTER_OTLP_COMPRESSION
        ).lower(),
        endpoint_from_environment=bool(traces_endpoint or base_endpoint),
    )


def _jaeger_agent(env: _Env) -> tuple[str, int]:
    host = env.text(OTEL_EXPORTER_JAEGER_AGENT_HOST) or DEFAULT_JAEGER_AGENT[0]
    port = env.integer(OTEL_EXPORTER_JAEGER_AGENT_PORT, DEFAULT_JAEGER_AGENT[1])
    return host, port if port is not None else DEFAULT_JAEGER_AGENT[1]


def _sampler(env: _Env) -> str:
    name = env.text(sdk_env.OTEL_TRACES_SAMPLER).lower()
    if name and name not in KNOWN_SAMPLERS:
        logger.warning("unknown OTEL_TRACES_SAMPLER %r (known: %s); using %s", name, KNOWN_SAMPLERS, DEFAULT_SAMPLER)
        name = ""
    return name or DEFAULT_SAMPLER


def _sampler_arg(env: _Env, sampler: str) -> float | None:
    """The ratio for the traceidratio samplers: 0..1, else 1.0 (warned), as the SDK does."""
    if not sampler.endswith("traceidratio"):
        return None
    raw = env.text(sdk_env.OTEL_TRACES_SAMPLER_ARG)
    try:
        ratio = float(raw) if raw else 1.0
    except ValueError:
        ratio = -1.0
    if 0.0 <= ratio <= 1.0:
        return ratio
    logger.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a ratio between 0 and 1; using 1.0", raw)
    return 1.0


def _limits(env: _Env) -> LimitsConfig:
    """The SDK's limit variables and defaults; the span-specific ones win over the general ones."""
    attributes = env.integer(sdk_env.OTEL_ATTRIBUTE_COUNT_LIMIT, 128)
    length = env.integer(sdk_env.OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, None)
    return LimitsConfig(
        max_span_attributes=env.integer(sdk_env.OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, attributes),
        max_events=env.integer(sdk_env.OTEL_SPAN_EVENT_COUNT_LIMIT, 128),
        max_links=env.integer(sdk_env.OTEL_SPAN_LINK_COUNT_LIMIT, 128),
        max_event_attributes=env.integer(sdk_env.OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT, 128),
        max_link_attributes=env.integer(sdk_env.OTEL_LINK_ATTRIBUTE_COUNT_LIMIT, 128),
        max_span_attribute_length=env.integer(sdk_env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, length),
    )

"""Telemetry configuration as data: frozen configs for traces, metrics and logs, built by pure functions.

`tracing_config(environ, defaults)`, `metrics_config(environ)` and `logs_config(environ)` are the only places
that read the standard ``OTEL_*`` variables (through the SDK's own constants), and `otlp_config` is the one
reading of the OTLP exporter variables for every signal. The builders in tracing.provider, tracing.exporters,
tracing.metrics and tracing.log_export read nothing but these objects, so a test builds a provider from data
without touching os.environ. No Django here: the CLI uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote_plus

from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_PROPAGATORS,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.sdk import environment_variables as sdk_env

# The semantic-convention names, not the SDK's copies: a process with tracing disabled never imports the SDK.
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME, SERVICE_VERSION

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
DEFAULT_OTLP_HTTP_BASE = "http://localhost:4318"
DEFAULT_OTLP_HTTP_ENDPOINT = f"{DEFAULT_OTLP_HTTP_BASE}/v1/traces"
DEFAULT_OTLP_GRPC_ENDPOINT = "http://localhost:4317"
SIGNALS = ("traces", "metrics", "logs")
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
    # Often a credential (an API key, the CLI's token): never in a repr, so never in a log line.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = DEFAULT_OTLP_TIMEOUT_SECONDS
    compression: str = ""
    # True when the endpoint came from OTEL_EXPORTER_OTLP_*ENDPOINT rather than the process default.
    endpoint_from_environment: bool = False

    @property
    def target(self) -> str:
        """Protocol and endpoint, for the start-up line and the export warnings."""
        return f"{self.protocol} {self.endpoint}"


@dataclass(frozen=True)
class BatchConfig:
    """BatchSpanProcessor settings (OTEL_BSP_*); None means "not configured" (the exporter or the SDK decides)."""

    schedule_delay_millis: int | None = None
    max_queue_size: int = 2048
    max_export_batch_size: int | None = None
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


METRICS_EXPORTERS = ("otlp", "console", "prometheus")
LOGS_EXPORTERS = ("otlp", "console")
TEMPORALITY_PREFERENCES = ("cumulative", "delta", "lowmemory")
HISTOGRAM_AGGREGATIONS = ("explicit_bucket_histogram", "base2_exponential_bucket_histogram")
EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")
# The maintained Prometheus exporter's variables (opentelemetry-exporter-prometheus documents them).
OTEL_EXPORTER_PROMETHEUS_HOST = "OTEL_EXPORTER_PROMETHEUS_HOST"
OTEL_EXPORTER_PROMETHEUS_PORT = "OTEL_EXPORTER_PROMETHEUS_PORT"
# Ours: the scrape path, and the bearer token the endpoint then requires.
FLOWEXEC_PROMETHEUS_PATH = "FLOWEXEC_PROMETHEUS_PATH"
FLOWEXEC_PROMETHEUS_TOKEN = "FLOWEXEC_PROMETHEUS_TOKEN"
DEFAULT_PROMETHEUS_HOST = "127.0.0.1"
DEFAULT_PROMETHEUS_PORT = 9464
DEFAULT_PROMETHEUS_PATH = "/metrics"


@dataclass(frozen=True)
class PrometheusConfig:
    """The scrape endpoint of the `prometheus` metrics exporter (one per process, from the first free port)."""

    host: str = DEFAULT_PROMETHEUS_HOST
    port: int = DEFAULT_PROMETHEUS_PORT
    path: str = DEFAULT_PROMETHEUS_PATH
    # Empty: no authentication, which only a loopback host may go without.
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class MetricsConfig:
    """Everything this process's MeterProvider is built from."""

    disabled: bool = False
    exporters: tuple[str, ...] = ()
    otlp: OtlpConfig = field(default_factory=lambda: OtlpConfig(endpoint=f"{DEFAULT_OTLP_HTTP_BASE}/v1/metrics"))
    export_interval_millis: int = 60_000
    export_timeout_millis: int = 30_000
    temporality: str = "cumulative"
    histogram_aggregation: str = "explicit_bucket_histogram"
    exemplar_filter: str = "trace_based"
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)


@dataclass(frozen=True)
class LogsConfig:
    """Everything this process's LoggerProvider is built from (batch: the OTEL_BLRP_* settings)."""

    disabled: bool = False
    exporters: tuple[str, ...] = ()
    otlp: OtlpConfig = field(default_factory=lambda: OtlpConfig(endpoint=f"{DEFAULT_OTLP_HTTP_BASE}/v1/logs"))
    batch: BatchConfig = field(
        default_factory=lambda: BatchConfig(schedule_delay_millis=1000, max_export_batch_size=512)
    )


def metrics_config(environ: Mapping[str, str]) -> MetricsConfig:
    """The metrics configuration for this environment; metrics are opt-in (OTEL_METRICS_EXPORTER unset: none)."""
    env = _Env(environ)
    return MetricsConfig(
        disabled=env.sdk_disabled(),
        exporters=_known_exporters(env, OTEL_METRICS_EXPORTER, METRICS_EXPORTERS),
        otlp=otlp_config(environ, "metrics"),
        export_interval_millis=env.integer(sdk_env.OTEL_METRIC_EXPORT_INTERVAL, 60_000),
        export_timeout_millis=env.integer(sdk_env.OTEL_METRIC_EXPORT_TIMEOUT, 30_000),
        temporality=env.choice(
            sdk_env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, TEMPORALITY_PREFERENCES, "cumulative"
        ),
        histogram_aggregation=env.choice(
            sdk_env.OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION,
            HISTOGRAM_AGGREGATIONS,
            "explicit_bucket_histogram",
        ),
        exemplar_filter=env.choice(sdk_env.OTEL_METRICS_EXEMPLAR_FILTER, EXEMPLAR_FILTERS, "trace_based"),
        prometheus=_prometheus(env),
    )


def logs_config(environ: Mapping[str, str]) -> LogsConfig:
    """The log export configuration for this environment; opt-in like metrics (OTEL_LOGS_EXPORTER unset: none)."""
    env = _Env(environ)
    return LogsConfig(
        disabled=env.sdk_disabled(),
        exporters=_known_exporters(env, OTEL_LOGS_EXPORTER, LOGS_EXPORTERS),
        otlp=otlp_config(environ, "logs"),
        batch=BatchConfig(
            schedule_delay_millis=env.integer(sdk_env.OTEL_BLRP_SCHEDULE_DELAY, 1000),
            max_queue_size=env.integer(sdk_env.OTEL_BLRP_MAX_QUEUE_SIZE, 2048),
            max_export_batch_size=env.integer(sdk_env.OTEL_BLRP_MAX_EXPORT_BATCH_SIZE, 512),
            export_timeout_millis=env.integer(sdk_env.OTEL_BLRP_EXPORT_TIMEOUT, 30_000),
        ),
    )


def tracing_config(environ: Mapping[str, str], defaults: ProcessDefaults) -> TracingConfig:
    """The configuration for this environment; bad values warn and fall back (never raise)."""
    env = _Env(environ)
    return TracingConfig(
        disabled=env.sdk_disabled(),
        resource=MappingProxyType(_resource(env, defaults)),
        exporters=_exporters(env, defaults),
        otlp=otlp_config(environ, "traces", defaults),
        jaeger_agent=_jaeger_agent(env),
        sampler=(sampler := _sampler(env)),
        sampler_arg=_sampler_arg(env, sampler),
        batch=BatchConfig(
            schedule_delay_millis=env.integer(sdk_env.OTEL_BSP_SCHEDULE_DELAY, None),
            max_queue_size=env.integer(sdk_env.OTEL_BSP_MAX_QUEUE_SIZE, 2048),
            max_export_batch_size=env.integer(sdk_env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, None),
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

    def sdk_disabled(self) -> bool:
        """OTEL_SDK_DISABLED=true (case-insensitive), as the spec defines it."""
        return self.text(sdk_env.OTEL_SDK_DISABLED).lower() == "true"

    def choice(self, name: str, known: tuple[str, ...], default: str) -> str:
        """One of known (case-insensitive), else default (warned if set but unknown)."""
        value = self.text(name).lower()
        if value and value not in known:
            logger.warning("%s=%r is not one of %s; using %s", name, value, ", ".join(known), default)
            return default
        return value or default

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


def otlp_config(environ: Mapping[str, str], signal: str, defaults: ProcessDefaults | None = None) -> OtlpConfig:
    """The OTLP exporter's settings for one signal; its own variables (e.g. _METRICS_) win over the generic ones.

    `defaults` (the traces' process defaults) supply the endpoint, headers and timeout when no variable does.
    """
    from opentelemetry.util.re import parse_env_headers

    if signal not in SIGNALS:
        raise ValueError(f"unknown OTLP signal {signal!r} (known: {', '.join(SIGNALS)})")
    env = _Env(environ)

    def variable(setting: str) -> str:
        return getattr(sdk_env, f"OTEL_EXPORTER_OTLP_{signal.upper()}_{setting}")

    protocol = env.text(variable("PROTOCOL"), sdk_env.OTEL_EXPORTER_OTLP_PROTOCOL).lower()
    if protocol and protocol not in OTLP_PROTOCOLS:
        logger.warning(
            "OTLP protocol %r is not supported (use one of %s); using %s",
            protocol,
            ", ".join(OTLP_PROTOCOLS),
            DEFAULT_OTLP_PROTOCOL,
        )
        protocol = ""
    protocol = protocol or DEFAULT_OTLP_PROTOCOL
    signal_endpoint = env.text(variable("ENDPOINT"))
    base_endpoint = env.text(sdk_env.OTEL_EXPORTER_OTLP_ENDPOINT)
    if signal_endpoint or base_endpoint:
        # Per the OTLP exporter spec, only the generic endpoint gets the signal path appended (http/protobuf).
        endpoint = signal_endpoint or (
            f"{base_endpoint.removesuffix('/')}/v1/{signal}" if protocol == "http/protobuf" else base_endpoint
        )
    elif protocol == "grpc":
        # The process default is an OTLP/HTTP URL, which a gRPC exporter cannot use.
        endpoint = DEFAULT_OTLP_GRPC_ENDPOINT
    else:
        endpoint = (defaults and defaults.otlp_endpoint) or f"{DEFAULT_OTLP_HTTP_BASE}/v1/{signal}"
    raw_headers = env.text(variable("HEADERS"), sdk_env.OTEL_EXPORTER_OTLP_HEADERS)
    if raw_headers:
        headers = parse_env_headers(raw_headers, liberal=True)
    else:
        headers = dict(defaults.otlp_headers) if defaults else {}
    timeout = env.seconds(variable("TIMEOUT"), sdk_env.OTEL_EXPORTER_OTLP_TIMEOUT)
    return OtlpConfig(
        protocol=protocol,
        endpoint=endpoint,
        headers=MappingProxyType(headers),
        timeout=timeout or (defaults.otlp_timeout if defaults else DEFAULT_OTLP_TIMEOUT_SECONDS),
        compression=env.text(variable("COMPRESSION"), sdk_env.OTEL_EXPORTER_OTLP_COMPRESSION).lower(),
        endpoint_from_environment=bool(signal_endpoint or base_endpoint),
    )


def _known_exporters(env: _Env, variable: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """A metrics or logs exporter list: known names only (unknown ones warn and are skipped); none is nothing."""
    names = []
    for name in env.names(variable):
        if name == "none":
            continue
        if name not in known:
            logger.warning("unknown exporter %r in %s (known: %s); skipped", name, variable, ", ".join(known))
            continue
        names.append(name)
    return tuple(names)


def _prometheus(env: _Env) -> PrometheusConfig:
    port = env.integer(OTEL_EXPORTER_PROMETHEUS_PORT, DEFAULT_PROMETHEUS_PORT)
    if port is None or port > 65535:
        logger.warning("%s is not a port; using %d", OTEL_EXPORTER_PROMETHEUS_PORT, DEFAULT_PROMETHEUS_PORT)
        port = DEFAULT_PROMETHEUS_PORT
    path = env.text(FLOWEXEC_PROMETHEUS_PATH) or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/") or "?" in path or "#" in path:
        logger.warning("%s=%r is not a URL path; using %s", FLOWEXEC_PROMETHEUS_PATH, path, DEFAULT_PROMETHEUS_PATH)
        path = DEFAULT_PROMETHEUS_PATH
    return PrometheusConfig(
        host=env.text(OTEL_EXPORTER_PROMETHEUS_HOST) or DEFAULT_PROMETHEUS_HOST,
        port=port,
        path=path,
        token=env.text(FLOWEXEC_PROMETHEUS_TOKEN),
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

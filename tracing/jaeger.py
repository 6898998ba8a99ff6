"""Jaeger thrift exporter behind a compatibility step, imported only when `jaeger` is selected.

opentelemetry-exporter-jaeger-thrift 1.21.0 is the last release. Against opentelemetry-sdk >= 1.40 its
``__init__`` fails to import for two reasons:

* it imports ``deprecated`` (the ``Deprecated`` distribution, no longer pulled in by the SDK; we list it in
  requirements.txt), and
* it imports the ``OTEL_EXPORTER_JAEGER_*`` constants that the SDK removed from
  ``opentelemetry.sdk.environment_variables``.

`ensure_importable` defines the missing constants on that module (each constant's value is its own name, as
it was in the SDK) before the exporter is imported; nothing else in the SDK reads them. The exporter then
sends compact thrift over UDP to the agent tracing.config read from ``OTEL_EXPORTER_JAEGER_AGENT_HOST`` /
``_PORT`` (default localhost:6831).

Recommended instead: Jaeger >= 1.35 receives OTLP natively on 4317 (gRPC) and 4318 (HTTP), so
``OTEL_TRACES_EXPORTER=otlp`` with ``OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318`` needs no compat step.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# The names opentelemetry-exporter-jaeger-thrift 1.21.0 imports from opentelemetry.sdk.environment_variables.
REMOVED_SDK_NAMES = (
    "OTEL_EXPORTER_JAEGER_AGENT_HOST",
    "OTEL_EXPORTER_JAEGER_AGENT_PORT",
    "OTEL_EXPORTER_JAEGER_AGENT_SPLIT_OVERSIZED_BATCHES",
    "OTEL_EXPORTER_JAEGER_ENDPOINT",
    "OTEL_EXPORTER_JAEGER_PASSWORD",
    "OTEL_EXPORTER_JAEGER_TIMEOUT",
    "OTEL_EXPORTER_JAEGER_USER",
)


def ensure_importable() -> None:
    """Restore what opentelemetry-exporter-jaeger-thrift 1.21.0 expects from the current SDK."""
    import importlib.util

    from opentelemetry.sdk import environment_variables

    for name in REMOVED_SDK_NAMES:
        if not hasattr(environment_variables, name):
            setattr(environment_variables, name, name)
    if importlib.util.find_spec("deprecated") is None:
        raise ImportError(
            "the jaeger exporter needs the 'Deprecated' package (pip install 'Deprecated>=1.2,<2'); "
            "or use OTEL_TRACES_EXPORTER=otlp, which Jaeger >= 1.35 accepts on ports 4317/4318"
        )


def jaeger_thrift_modules() -> tuple[ModuleType, ModuleType]:
    """The generated thrift modules (gen.agent.Agent, gen.jaeger.ttypes) shipped with the exporter."""
    ensure_importable()
    from opentelemetry.exporter.jaeger.thrift.gen.agent import Agent
    from opentelemetry.exporter.jaeger.thrift.gen.jaeger import ttypes

    return Agent, ttypes


def jaeger_exporter(host: str, port: int) -> SpanExporter:
    """A JaegerExporter sending compact thrift over UDP to the agent at host:port."""
    ensure_importable()
    from opentelemetry.exporter.jaeger.thrift import JaegerExporter

    with warnings.catch_warnings():
        # The class is decorated @deprecated (it recommends OTLP); we chose it knowingly.
        warnings.simplefilter("ignore", DeprecationWarning)
        return JaegerExporter(agent_host_name=host, agent_port=port)

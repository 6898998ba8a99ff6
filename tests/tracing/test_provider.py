"""Provider building without a global provider, configure_tracing once per process, warn-once exporting."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry import baggage, context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.otlp_receiver import OtlpReceiver
from tests.tracing.test_exporters_wire import closed_port
from tracing import exporters
from tracing.propagation import W3CTraceContextPropagator
from tracing.provider import build_propagator, shutdown_provider, tracer_provider_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def otel_env(monkeypatch):
    """Start each test from no OTEL_* variables; the test sets what it needs."""
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def finished(provider: TracerProvider, names: Sequence[str]) -> None:
    """Create nested spans with these names on provider."""
    tracer = provider.get_tracer("test")
    if names:
        with tracer.start_as_current_span(names[0]):
            finished(provider, names[1:])


def test_tracer_provider_for_exports_without_touching_the_global_provider(otel_env):
    otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with OtlpReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
        state = tracer_provider_for("builder-svc")
        finished(state.provider, ["outer", "inner"])
        assert shutdown_provider(state.provider, timeout_seconds=5)
        spans = receiver.wait_for(lambda s: len(s) >= 2)
    assert state.enabled
    assert state.exporters == ("otlp",)
    assert receiver.named("inner").parent_id == receiver.named("outer").span_id
    assert {span.service_name for span in spans} == {"builder-svc"}


def test_extra_exporters_supply_store_and_unknown_names_are_skipped_with_a_warning(otel_env, caplog):
    otel_env.setenv("OTEL_TRACES_EXPORTER", "store,bogus,none")
    memory = InMemorySpanExporter()
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        state = tracer_provider_for("store-svc", extra_exporters={"store": lambda: memory})
    finished(state.provider, ["stored"])
    assert shutdown_provider(state.provider, timeout_seconds=5)
    assert state.exporters == ("store",)
    assert [span.name for span in memory.get_finished_spans()] == ["stored"]
    assert [record.getMessage() for record in caplog.records if "bogus" in record.getMessage()] != []
    assert len(caplog.records) == 1


def test_store_without_a_factory_is_skipped_with_a_warning(otel_env, caplog):
    otel_env.setenv("OTEL_TRACES_EXPORTER", "store")
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        state = tracer_provider_for("cli")
    assert state.exporters == ()
    assert "exporters=none" in state.description
    assert ["store" in record.getMessage() for record in caplog.records] == [True]


def test_only_allowlisted_baggage_becomes_span_attributes(otel_env):
    memory = InMemorySpanExporter()
    state = tracer_provider_for("bag", default_exporters="mem", extra_exporters={"mem": lambda: memory})
    ctx = baggage.set_baggage("request_id", "r-1")
    ctx = baggage.set_baggage("secret", "s3cr3t", context=ctx)
    token = context.attach(ctx)
    try:
        finished(state.provider, ["with-baggage"])
    finally:
        context.detach(token)
    assert shutdown_provider(state.provider, timeout_seconds=5)
    [span] = memory.get_finished_spans()
    assert span.attributes["request_id"] == "r-1"
    assert "secret" not in span.attributes


def test_propagators_map_tracecontext_to_the_strict_propagator(otel_env, caplog):
    otel_env.setenv("OTEL_PROPAGATORS", "baggage,tracecontext,nope")
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        propagator, used = build_propagator()
    assert used == ("baggage", "tracecontext")
    assert any(isinstance(p, W3CTraceContextPropagator) for p in propagator._propagators)
    assert ["nope" in record.getMessage() for record in caplog.records] == [True]


class _Switchable(SpanExporter):
    """An exporter whose outcome the test decides (the wrapper's logic, not the wire, is under test)."""

    def __init__(self) -> None:
        self.result = SpanExportResult.FAILURE

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.result


def test_warn_once_exporter_logs_first_failure_and_recovery_only(otel_env, caplog):
    inner = _Switchable()
    wrapped = exporters.WarnOnceExporter(inner, "test-target")
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert wrapped.export([]) is SpanExportResult.FAILURE
        inner.result = SpanExportResult.SUCCESS
        assert wrapped.export([]) is SpanExportResult.SUCCESS
        assert wrapped.export([]) is SpanExportResult.SUCCESS
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "failing" in messages[0]
    assert "recovered" in messages[1]


def test_warn_once_exporter_silences_the_real_otlp_exporters_retry_noise(otel_env, caplog):
    dead = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{closed_port()}/v1/traces", timeout=0.5)
    wrapped = exporters.WarnOnceExporter(dead, "dead")
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            assert wrapped.export([]) is SpanExportResult.FAILURE
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.name == "flowexec.tracing"
    assert "trace export to dead failing (Failed to export spans batch" in record.getMessage()
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []


SCRIPT = """
import json, logging, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
if sys.argv[1] == "preinstalled":
    trace.set_tracer_provider(TracerProvider())
from tracing.provider import configure_tracing
first = configure_tracing("once", default_exporters="console")
second = configure_tracing("twice", default_exporters="otlp")
print(json.dumps({
    "same": first is second,
    "global": trace.get_tracer_provider() is first.provider,
    "processors": len(first.provider._active_span_processor._span_processors),
    "exporters": list(first.exporters),
    "description": first.description,
}))
"""


@pytest.mark.parametrize(("mode", "processors", "exporter_list"), [("fresh", 2, ["console"]), ("preinstalled", 0, [])])
def test_configure_tracing_runs_once_and_keeps_a_preinstalled_provider(mode, processors, exporter_list):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_"))}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["same"]
    assert result["global"]
    # fresh: the baggage processor plus the console one; preinstalled: nothing added.
    assert result["processors"] == processors
    assert result["exporters"] == exporter_list
    if mode == "preinstalled":
        assert "keeping the TracerProvider already installed" in result["description"]

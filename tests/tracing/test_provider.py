"""Provider building without a global provider, configure_tracing once per process, warn-once exporting."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.live import wait_until
from tests.otlp_receiver import GrpcOtlpReceiver, OtlpReceiver
from tests.tracing.test_exporters_wire import closed_port
from tracing import exporters
from tracing.config import BatchConfig, LimitsConfig, OtlpConfig, TracingConfig
from tracing.exporters import ExporterSpec
from tracing.propagation import W3CTraceContextPropagator, build_propagator
from tracing.provider import build_provider, shutdown_provider

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


def config(service: str = "test-svc", **fields) -> TracingConfig:
    """A TracingConfig given as data (no environment involved)."""
    return TracingConfig(resource={SERVICE_NAME: service}, **fields)


def test_build_provider_exports_from_a_config_object_without_touching_the_global_provider():
    with OtlpReceiver() as receiver:
        state = build_provider(config("builder-svc", exporters=("otlp",), otlp=OtlpConfig(endpoint=receiver.endpoint)))
        finished(state.provider, ["outer", "inner"])
        assert shutdown_provider(state.provider, timeout_seconds=5)
        spans = receiver.wait_for(lambda s: len(s) >= 2)
    assert state.enabled and state.exporters == ("otlp",)
    assert receiver.named("inner").parent_id == receiver.named("outer").span_id
    assert {span.service_name for span in spans} == {"builder-svc"}
    assert trace.get_tracer_provider() is not state.provider


def test_registered_factory_builds_the_exporter_and_unknown_names_are_skipped_with_a_warning(caplog):
    memory = InMemorySpanExporter()
    exporters.register_exporter("memory-test", lambda cfg: ExporterSpec("memory-test", memory, False, "memory"))
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        state = build_provider(config("store-svc", exporters=("memory-test", "bogus")))
    finished(state.provider, ["stored"])
    assert shutdown_provider(state.provider, timeout_seconds=5)
    assert state.exporters == ("memory-test",)
    assert [span.name for span in memory.get_finished_spans()] == ["stored"]
    [warning] = caplog.records
    assert "'bogus'" in warning.getMessage() and "memory-test" in warning.getMessage()


def test_an_installed_opentelemetry_traces_exporter_entry_point_is_accepted_by_name():
    state = build_provider(config(exporters=("otlp_proto_http",)))
    assert state.exporters == ("otlp_proto_http",)
    assert "otlp_proto_http(opentelemetry.exporter.otlp.proto.http" in state.description
    assert shutdown_provider(state.provider, timeout_seconds=5)


def test_a_factory_that_cannot_build_is_skipped_with_a_warning(caplog):
    def broken(cfg: TracingConfig) -> ExporterSpec:
        raise RuntimeError("needs the service")

    exporters.register_exporter("broken-test", broken)
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        state = build_provider(config(exporters=("broken-test",)))
    assert state.exporters == ()
    assert "exporters=none" in state.description
    assert ["needs the service" in record.getMessage() for record in caplog.records] == [True]


def test_console_writes_spans_to_stderr_so_stdout_stays_machine_readable(capsys):
    state = build_provider(config("console-svc", exporters=("console",)))
    finished(state.provider, ["printed"])
    assert shutdown_provider(state.provider, timeout_seconds=5)
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err)["name"] == "printed"


def test_sampler_and_span_limits_come_from_the_config():
    state = build_provider(
        config(sampler="traceidratio", sampler_arg=0.0, limits=LimitsConfig(max_span_attribute_length=4))
    )
    assert state.provider.sampler.get_description() == "TraceIdRatioBased{0.0}"
    span = state.provider.get_tracer("t").start_span("s", attributes={"k": "abcdefgh"})
    assert not span.is_recording()
    kept = build_provider(config(limits=LimitsConfig(max_span_attribute_length=4))).provider
    with kept.get_tracer("t").start_as_current_span("s", attributes={"k": "abcdefgh"}) as recorded:
        assert recorded.attributes["k"] == "abcd"


def test_only_allowlisted_baggage_becomes_span_attributes():
    memory = InMemorySpanExporter()
    exporters.register_exporter("memory-bag", lambda cfg: ExporterSpec("memory-bag", memory, False, "memory"))
    state = build_provider(config("bag", exporters=("memory-bag",), baggage_keys=("request_id",)))
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


def test_a_url_copied_from_baggage_is_redacted_on_every_span_flowexecs_own_too():
    """Baggage is copied before the URLs are redacted: an allowlisted key named like a URL attribute is redacted."""
    memory = InMemorySpanExporter()
    exporters.register_exporter("memory-url-bag", lambda cfg: ExporterSpec("memory-url-bag", memory, False, "memory"))
    state = build_provider(config("bag", exporters=("memory-url-bag",), baggage_keys=("url.full",)))
    token = context.attach(baggage.set_baggage("url.full", "https://u:pw@h/x?token=t0k&page=2"))
    try:
        state.provider.get_tracer("flowexec").start_span("execute_flow demo").end()
        state.provider.get_tracer("test").start_span("other").end()
    finally:
        context.detach(token)
    assert shutdown_provider(state.provider, timeout_seconds=5)
    assert {span.name: span.attributes["url.full"] for span in memory.get_finished_spans()} == {
        "execute_flow demo": "https://h/x?token=REDACTED&page=2",
        "other": "https://h/x?token=REDACTED&page=2",
    }


def test_propagators_map_tracecontext_to_the_strict_propagator(caplog):
    with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
        propagator, used = build_propagator(config(propagators=("baggage", "tracecontext", "nope")))
    assert used == ("baggage", "tracecontext")
    assert any(isinstance(p, W3CTraceContextPropagator) for p in propagator._propagators)
    assert ["nope" in record.getMessage() for record in caplog.records] == [True]


class _Switchable(SpanExporter):
    """An exporter whose outcome the test decides (the wrapper's logic, not the wire, is under test)."""

    def __init__(self) -> None:
        self.result = SpanExportResult.FAILURE

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.result


def test_warn_once_exporter_logs_first_failure_and_recovery_only(caplog):
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


def test_warn_once_exporter_silences_the_real_otlp_exporters_retry_noise(caplog):
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
import os
from tracing.config import ProcessDefaults, tracing_config
from tracing.provider import configure_tracing
first = configure_tracing(tracing_config(os.environ, ProcessDefaults("once", exporters=("console",))))
second = configure_tracing(tracing_config(os.environ, ProcessDefaults("twice", exporters=("otlp",))))
print(json.dumps({
    "same": first is second,
    "global": trace.get_tracer_provider() is first.provider,
    "processors": len(first.provider._active_span_processor._span_processors),
    "exporters": list(first.exporters),
    "description": first.description,
}))
"""


@pytest.mark.parametrize(("mode", "processors", "exporter_list"), [("fresh", 2, ["console"]), ("preinstalled", 1, [])])
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
    # fresh: the start processor (baggage, URL redaction) and the console exporter's; preinstalled: only the start
    # processor is added, so the contract's attributes hold under opentelemetry-instrument too.
    assert result["processors"] == processors
    assert result["exporters"] == exporter_list
    if mode == "preinstalled":
        assert "keeping the TracerProvider already installed" in result["description"]


def test_database_query_spans_start_only_inside_another_span(spans):
    """FLOWEXEC_TRACE_DATABASE=1: a heartbeat or retention sweep's queries make no orphan one-span traces."""
    from tracing.instrumentation import ChildSpansOnly

    queries = ChildSpansOnly().get_tracer("opentelemetry.instrumentation.sqlite3")
    with queries.start_as_current_span("SELECT sweep") as alone:
        assert not alone.is_recording()
    assert not queries.start_span("UPDATE sweep").is_recording()
    with (
        trace.get_tracer("test").start_as_current_span("execute_flow demo") as parent,
        queries.start_as_current_span("SELECT step") as child,
    ):
        assert child.is_recording()
    assert [(span.name, span.parent.span_id if span.parent else None) for span in spans.all()] == [
        ("SELECT step", parent.get_span_context().span_id),
        ("execute_flow demo", None),
    ]


def test_otlp_grpc_accepts_explicit_headers_as_data():
    """gRPC metadata keys must be lower-case: a header given as "X-Tenant" used to fail every export."""
    with GrpcOtlpReceiver() as receiver:
        otlp = OtlpConfig(protocol="grpc", endpoint=receiver.base_url, headers={"X-Tenant": "t1"}, timeout=2)
        state = build_provider(config("grpc-svc", exporters=("otlp",), otlp=otlp))
        finished(state.provider, ["over-grpc"])
        assert shutdown_provider(state.provider, timeout_seconds=5)
        [span] = receiver.wait_for(lambda s: len(s) >= 1)
    assert (span.name, span.service_name) == ("over-grpc", "grpc-svc")
    assert [headers.get("x-tenant") for headers, _ in receiver.requests] == ["t1"]


def test_urls_in_spans_lose_userinfo_and_sensitive_query_values_on_the_wire():
    """OTel HTTP semantic conventions (url.full, url.query): no user:password@, sensitive values REDACTED."""
    url = "https://alice:s3cr3t@api.example/v1/items?token=t0k&sig=abc&signature=def&password=pw&page=2"
    with OtlpReceiver() as receiver:
        state = build_provider(config("urls", exporters=("otlp",), otlp=OtlpConfig(endpoint=receiver.endpoint)))
        tracer = state.provider.get_tracer("test")
        tracer.start_span("GET", kind=trace.SpanKind.CLIENT, attributes={"url.full": url}).end()
        server_attributes = {"url.path": "/api/x", "url.query": "AWSAccessKeyId=AK&X-Goog-Signature=gs&q=1"}
        tracer.start_span("GET api/x", kind=trace.SpanKind.SERVER, attributes=server_attributes).end()
        old_names = {"http.target": "/api/x?api_key=k&q=1", "http.url": "http://u:p@h/x?pwd=1"}
        tracer.start_span("old names", kind=trace.SpanKind.SERVER, attributes=old_names).end()
        assert shutdown_provider(state.provider, timeout_seconds=5)
        receiver.wait_for(lambda s: len(s) >= 3)
    client, server, old = receiver.named("GET"), receiver.named("GET api/x"), receiver.named("old names")
    assert client.attributes["url.full"] == (
        "https://api.example/v1/items?token=REDACTED&sig=REDACTED&signature=REDACTED&password=REDACTED&page=2"
    )
    assert server.attributes["url.query"] == "AWSAccessKeyId=REDACTED&X-Goog-Signature=REDACTED&q=1"
    assert old.attributes["http.target"] == "/api/x?api_key=REDACTED&q=1"
    assert old.attributes["http.url"] == "http://h/x?pwd=REDACTED"


def _batch_queue(provider: TracerProvider) -> collections.deque:
    """The BatchSpanProcessor's span queue (SDK internals: there is no public accessor)."""
    processors = provider._active_span_processor._span_processors
    (batch,) = [processor for processor in processors if isinstance(processor, BatchSpanProcessor)]
    return batch._batch_processor._queue


@pytest.mark.hardening
@pytest.mark.parametrize("backend", ["refused", "hanging"])
def test_a_dead_or_hanging_backend_keeps_the_span_queue_bounded_and_warns_once(backend, caplog):
    with contextlib.ExitStack() as stack:
        if backend == "hanging":  # accepts the connection (kernel backlog), never answers
            listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            port = listener.getsockname()[1]
        else:
            port = closed_port()
        state = build_provider(config(
            exporters=("otlp",),
            otlp=OtlpConfig(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=0.5),
            batch=BatchConfig(max_queue_size=64, max_export_batch_size=16, schedule_delay_millis=10),
        ))  # fmt: skip
        queue = _batch_queue(state.provider)
        with caplog.at_level(logging.WARNING, logger="flowexec.tracing"):
            peak = 0
            for _ in range(5000):
                finished(state.provider, ["request"])
                peak = max(peak, len(queue))

            def warnings() -> list[str]:
                return [r.getMessage() for r in caplog.records if r.getMessage().startswith("trace export to")]

            wait_until(warnings, timeout=15, message="the export failure warning")
            finished(state.provider, ["after the warning"])
            shutdown_provider(state.provider, timeout_seconds=2)
    assert peak <= 64
    assert len(warnings()) == 1, warnings()


def _batch_sizes(provider: TracerProvider) -> list[int]:
    processors = provider._active_span_processor._span_processors
    return [p._batch_processor._max_export_batch_size for p in processors if isinstance(p, BatchSpanProcessor)]


def test_the_store_and_otlp_export_small_batches_unless_otel_bsp_max_export_batch_size_says_otherwise():
    from tracing.store.exporter import STORE_EXPORT_BATCH_SIZE, store_exporter

    exporters.register_exporter("store", store_exporter)
    otlp = OtlpConfig(endpoint=f"http://127.0.0.1:{closed_port()}/v1/traces", timeout=0.5)
    default = build_provider(config(exporters=("store", "otlp", "console"), otlp=otlp))
    batch = BatchConfig(max_export_batch_size=300)
    chosen = build_provider(config(exporters=("store", "otlp"), otlp=otlp, batch=batch))
    try:
        # The store's batches are one write transaction each on the service's database, and encoding an
        # OTLP batch holds the GIL the request threads wait for: small ones.
        assert _batch_sizes(default.provider) == [STORE_EXPORT_BATCH_SIZE, exporters.OTLP_EXPORT_BATCH_SIZE] == [64, 64]
        assert _batch_sizes(chosen.provider) == [300, 300]
    finally:
        default.provider.shutdown()
        chosen.provider.shutdown()

"""flowexec.cli.otlp: the hand-written ExportTraceServiceRequest is the SDK encoder's, byte for byte; its POST."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from flowexec.cli import otlp
from tests.cli.support import answering_servers
from tests.live import base_env
from tests.otlp_receiver import OtlpReceiver, decode_export_request

ROOT = Path(__file__).resolve().parents[2]

REMOTE = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("ci", "job42"), ("vendor", "abc")]),
)
LINKED = SpanContext(0xABC, 0xDEF, is_remote=False, trace_state=TraceState([("k", "v")]))
EVERY_KIND_OF_VALUE = {
    "text": "héllo",
    "empty": "",
    "yes": True,
    "no": False,
    "zero": 0,
    "answer": 42,
    "negative": -7,
    "huge": 2**63 - 1,
    "ratio": 0.25,
    "float-zero": 0.0,
    "raw": b"\x00\xff",
    "strings": ("a", "b"),
    "ints": (1, -2),
    "bools": (True, False),
    "floats": (1.5, -0.0),
    "nothing": (),
}


def provider_spans(resource: Resource, scope: tuple[str, str | None, str | None]) -> list[ReadableSpan]:
    """Spans of every kind with every field set, from a real SDK provider (limits small enough to drop)."""
    memory = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=len(EVERY_KIND_OF_VALUE), max_events=2, max_links=1,
                        max_event_attributes=1, max_link_attributes=1)
    with mock.patch.dict(os.environ):
        # Real SDK spans even in the pass that runs with OTEL_SDK_DISABLED=true (the provider reads it).
        os.environ.pop("OTEL_SDK_DISABLED", None)
        provider = TracerProvider(resource=resource, span_limits=limits, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    name, version, schema_url = scope
    tracer = provider.get_tracer(name, version, schema_url=schema_url, attributes={"scope.key": "scope-value"})
    remote_parent = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    with tracer.start_as_current_span(
        "root", remote_parent, kind=SpanKind.SERVER, attributes=EVERY_KIND_OF_VALUE,
        links=[Link(REMOTE), Link(LINKED, {"link.a": 1, "link.b": 2})],
    ) as root:
        root.set_attribute("over.the.limit", "dropped")
        root.add_event("first", {"e.a": "x", "e.b": "dropped"}, timestamp=1_700_000_000_000_000_001)
        root.add_event("second", {"e.a": 1, "e.b": 2})
        root.add_event("third", {"e.a": 1.5})
        for kind in (SpanKind.INTERNAL, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER):
            with tracer.start_as_current_span(f"child {kind.name}", kind=kind) as child:
                child.set_status(Status(StatusCode.ERROR, "it broke"))
        with tracer.start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def hand_made_span(resource: Resource, scope: InstrumentationScope | None) -> ReadableSpan:
    """A ReadableSpan as an exporter may get it, with values the SDK's own attributes never hold (None, mappings)."""
    context = SpanContext(0x1, 0x2, is_remote=False)
    return ReadableSpan(
        name="",
        context=context,
        parent=None,
        resource=resource,
        attributes={"none": None, "map": {"inner": 1, "deeper": {"x": [1, "two"]}}, "": "blank key"},
        events=(Event("evt", {"k": None}, timestamp=5),),
        kind=SpanKind.INTERNAL,
        start_time=1,
        end_time=2,
        instrumentation_scope=scope,
    )


def sdk_bytes(spans: list[ReadableSpan]) -> bytes:
    """What the SDK's OTLP encoder sends, plus the Link.trace_state it leaves out (trace.proto has the field)."""
    request = sdk_encode_spans(spans)
    links = iter(link for span in spans for link in span.links)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for encoded in span.links:
                    encoded.trace_state = ",".join(f"{k}={v}" for k, v in next(links).context.trace_state.items())
    return request.SerializeToString()


def test_spans_with_every_field_encode_exactly_as_the_sdk_encoder():
    resource = Resource({"service.name": "flowexec-cli", "service.version": "1", "n": 3}, "https://schema/r")
    spans = provider_spans(resource, ("flowexec", "0.1.0", "https://schema/s"))
    assert spans[-1].dropped_attributes and spans[-1].dropped_events and spans[-1].dropped_links
    assert spans[-1].events[0].dropped_attributes and spans[-1].links[0].dropped_attributes
    assert otlp.encode_spans(spans) == sdk_bytes(spans)


def test_several_resources_and_scopes_group_as_the_sdk_groups_them():
    first, second = Resource({"service.name": "a"}), Resource({"service.name": "b"})
    spans = [
        *provider_spans(first, ("one", None, None)),
        *provider_spans(second, ("two", "2", None)),
        *provider_spans(first, ("three", None, None)),
        hand_made_span(second, None),
        hand_made_span(first, InstrumentationScope("four", "4", "https://schema/4")),
    ]
    assert otlp.encode_spans(spans) == sdk_bytes(spans)


def test_values_otlp_cannot_carry_drop_only_their_attribute():
    span = hand_made_span(Resource({}), None)
    bad = ReadableSpan(name="bad", context=span.get_span_context(), resource=span.resource, start_time=1, end_time=2,
                       attributes={"kept": 1, "too.big": 2**64, "object": object(), "nested.bad": (1, object())})
    [decoded] = decode_export_request(otlp.encode_spans([bad]))
    assert decoded.attributes == {"kept": 1}


def test_a_collector_decodes_the_request_with_opentelemetry_proto():
    spans = provider_spans(Resource({"service.name": "flowexec-cli"}), ("flowexec", "0.1.0", None))
    request = ExportTraceServiceRequest.FromString(otlp.encode_spans(spans))
    root = next(s for s in request.resource_spans[0].scope_spans[0].spans if s.name == "root")
    assert root.parent_span_id == REMOTE.span_id.to_bytes(8, "big")
    assert root.trace_state == "ci=job42,vendor=abc"
    assert root.flags == otlp.FLAG_HAS_IS_REMOTE | otlp.FLAG_IS_REMOTE
    assert root.links[0].trace_state == "k=v"
    assert request.resource_spans[0].scope_spans[0].scope.name == "flowexec"


@pytest.fixture
def receiver() -> Iterator[Any]:
    with answering_servers() as make:
        yield make


@pytest.mark.parametrize("compression", ["", "gzip", "deflate"])
def test_export_posts_protobuf_with_headers_and_compression(receiver, compression):
    import zlib

    target = receiver(200)
    spans = provider_spans(Resource({"service.name": "flowexec-cli"}), ("flowexec", None, None))
    exporter = otlp.OtlpHttpSpanExporter(
        target.endpoint, headers={"Authorization": "Token k"}, timeout=5, compression=compression, user_agent="ua/1"
    )
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    [(headers, body)] = target.requests
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["Authorization"] == "Token k" and headers["User-Agent"] == "ua/1"
    assert headers.get("Content-Encoding", "") == compression
    plain = {"gzip": gzip.decompress, "deflate": zlib.decompress}.get(compression, bytes)(body)
    assert plain == otlp.encode_spans(spans)


def test_export_failures_return_failure_and_log_never_raise(receiver, caplog):
    from tests.live import free_port

    spans = provider_spans(Resource({}), ("flowexec", None, None))
    refusing = otlp.OtlpHttpSpanExporter(
        f"http://127.0.0.1:{free_port()}/v1/traces", headers={}, timeout=2, user_agent="ua/1"
    )
    assert refusing.export(spans) is SpanExportResult.FAILURE
    rejecting = otlp.OtlpHttpSpanExporter(receiver(403).endpoint, headers={}, timeout=2, user_agent="ua/1")
    assert rejecting.export(spans) is SpanExportResult.FAILURE
    assert "failed" in caplog.text and "answered 403" in caplog.text
    rejecting.shutdown()
    assert rejecting.export(spans) is SpanExportResult.FAILURE


# --------------------------------------------------------------------------- a real CLI process

EXECUTION = {"id": "0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11", "flow": "hello", "status": "succeeded",
             "outputs": {"greeting": "hi"}, "error": "", "trace_id": "ab" * 16, "steps": [], "links": {}}
# After the silent backend accepted the export: the CLI's export budget, then its exit (target: a hung
# backend adds at most 0.5 s to a run; the budget before this exporter was 0.75 s).
HUNG_EXIT_SECONDS = 0.65


class _Api:
    """A stand-in flowexec API on 127.0.0.1: POST /api/executions/ answers one finished execution."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.headers.append(dict(self.headers.items()))
                payload = json.dumps(EXECUTION).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def api() -> Iterator[_Api]:
    started = _Api()
    yield started
    started.server.shutdown()
    started.server.server_close()


def cli(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flowexec.cli", "run", "hello"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_traced_cli_run_sends_its_spans_to_an_otlp_receiver_before_it_exits(api):
    with OtlpReceiver() as receiver:
        env = base_env(FLOWEXEC_URL=api.url, OTEL_TRACES_EXPORTER="otlp",
                       OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint)
        process = cli(env)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert "greeting" in stdout
        spans = receiver.spans()  # already there: the CLI waited for the receiver's answer
    root = next(s for s in spans if s.name == "flowexec run")
    [client_span] = [s for s in spans if s.kind == "CLIENT"]
    assert (root.kind, root.parent_id, client_span.parent_id) == ("INTERNAL", "", root.span_id)
    assert {s.service_name for s in spans} == {"flowexec-cli"}
    port = api.server.server_address[1]
    assert client_span.name == "POST"
    assert client_span.attributes == {
        "http.request.method": "POST",
        "url.full": f"{api.url}/api/executions/",
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.response.status_code": 201,
        "request_id": root.attributes["request_id"],
        "client": "cli",
    }
    assert root.attributes["flow.execution.id"] == EXECUTION["id"]
    [headers] = api.headers
    assert headers["traceparent"].startswith(f"00-{client_span.trace_id}-{client_span.span_id}-")
    [(export_headers, _)] = receiver.requests
    assert export_headers["Content-Type"] == "application/x-protobuf"


class _SilentBackend:
    """Accepts connections and never answers (a hung trace backend); `accepted` is set at the first accept."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1/traces"
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.sock.accept()
                self.held.append(connection)
                self.accepted.set()

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        self.sock.close()


@pytest.mark.slow
def test_a_hung_trace_backend_holds_the_cli_exit_only_for_its_short_export_budget(api):
    backend = _SilentBackend()
    env = base_env(
        FLOWEXEC_URL=api.url, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=backend.endpoint
    )
    process = cli(env)
    try:
        assert backend.accepted.wait(60), "the CLI never exported"
        # The bound: waiting on the process, from the moment its export connected.
        returncode = process.wait(timeout=HUNG_EXIT_SECONDS)
        stdout, stderr = process.communicate(timeout=5)
    finally:
        process.kill()
        backend.close()
    assert returncode == 0, stderr
    assert "greeting" in stdout and stderr == ""


def test_with_the_sdk_disabled_a_run_imports_no_sdk_yet_still_propagates_the_trace_and_request_id(api):
    code = (
        "import sys\n"
        "from flowexec.cli.main import main\n"
        "code = main(['run', 'hello', '--request-id', 'rid-7'])\n"
        "print('SDK', sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk.')), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = base_env(FLOWEXEC_URL=api.url, OTEL_SDK_DISABLED="true", TRACEPARENT=f"00-{'ab' * 16}-{'cd' * 8}-01")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "SDK ['opentelemetry.sdk.environment_variables']"
    [headers] = api.headers
    assert headers["traceparent"] == f"00-{'ab' * 16}-{'cd' * 8}-01"  # the caller's context, unchanged
    assert headers["X-Request-ID"] == "rid-7" and "request_id=rid-7" in headers["baggage"]


def test_undecodable_argv_text_in_a_span_still_encodes_and_decodes():
    # `flowexec run $'\xff'`: Python hands the byte over as a lone surrogate, which UTF-8 cannot hold.
    spans = [hand_made_span(Resource({"service.name": "flowexec-cli"}), None)]
    spans = [ReadableSpan(name="flowexec run \udcff", context=spans[0].context, attributes={"flow.name": "a\udcffb"},
                          resource=spans[0].resource)]
    request = ExportTraceServiceRequest.FromString(otlp.encode_spans(spans))
    [span] = request.resource_spans[0].scope_spans[0].spans
    assert span.name == "flowexec run ?"
    assert span.attributes[0].value.string_value == "a?b"

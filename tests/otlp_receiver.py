"""Test receivers decoding real wire data: OTLP/HTTP protobuf, OTLP/gRPC, Jaeger compact thrift over UDP."""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACES_PATH = "/v1/traces"


@dataclass
class ReceivedSpan:
    """One span as it arrived on the wire, with ids as lower-case hex and values as plain Python."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    service_name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status_code: str = "UNSET"
    start_ns: int = 0
    end_ns: int = 0
    resource: dict[str, Any] = field(default_factory=dict)


SpanPredicate = Callable[[list[ReceivedSpan]], bool]


def any_value(value: common_pb2.AnyValue) -> Any:
    """Convert an OTLP AnyValue to a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return key_values(value.kvlist_value.values)
    return getattr(value, which)


def key_values(items: Any) -> dict[str, Any]:
    """Convert repeated OTLP KeyValue to a dict."""
    return {item.key: any_value(item.value) for item in items}


def decode_export_request(body: bytes, content_encoding: str = "") -> list[ReceivedSpan]:
    """Decode a (possibly gzip/deflate compressed) protobuf ExportTraceServiceRequest into spans."""
    encoding = content_encoding.lower()
    if encoding == "gzip" or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    return spans_from_request(request)


def spans_from_request(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Flatten an ExportTraceServiceRequest into ReceivedSpan objects."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        service_name=str(resource.get("service.name", "")),
                        attributes=key_values(span.attributes),
                        events=[(event.name, key_values(event.attributes)) for event in span.events],
                        status_code=trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        resource=resource,
                    )
                )
    return spans


class _SpanCollector:
    """Thread-safe store of received requests and spans with a bounded wait."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self._requests: list[tuple[dict[str, str], bytes]] = []

    def _record(self, headers: Mapping[str, str], body: bytes, spans: list[ReceivedSpan]) -> None:
        with self._condition:
            self._requests.append((dict(headers), body))
            self._spans.extend(spans)
            self._condition.notify_all()

    @property
    def requests(self) -> list[tuple[dict[str, str], bytes]]:
        """Every export request received so far, as (headers, raw body)."""
        with self._condition:
            return list(self._requests)

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in arrival order."""
        with self._condition:
            return list(self._spans)

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._condition:
            self._spans.clear()
            self._requests.clear()

    def wait_for(self, predicate: SpanPredicate, timeout: float = 10) -> list[ReceivedSpan]:
        """Block until predicate(spans) is true, or raise AssertionError listing what did arrive."""
        with self._condition:
            if self._condition.wait_for(lambda: predicate(list(self._spans)), timeout):
                return list(self._spans)
            dump = "\n".join(
                f"  {s.service_name} {s.kind} {s.name!r} trace={s.trace_id} span={s.span_id} "
                f"parent={s.parent_id or '-'} {s.attributes}"
                for s in self._spans
            )
            raise AssertionError(
                f"condition not met within {timeout}s; {len(self._requests)} request(s), "
                f"{len(self._spans)} span(s):\n{dump or '  (none)'}"
            )

    def wait_for_spans(self, count: int, timeout: float = 10) -> list[ReceivedSpan]:
        """Block until at least count spans arrived."""
        return self.wait_for(lambda spans: len(spans) >= count, timeout)

    def named(self, name: str) -> ReceivedSpan:
        """The first received span with this name."""
        for span in self.spans():
            if span.name == name:
                return span
        names = sorted({span.name for span in self.spans()})
        raise AssertionError(f"no span named {name!r}; received: {names}")

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Any:
        """Start serving; returns self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError


class _OtlpHttpHandler(BaseHTTPRequestHandler):
    """POST /v1/traces with protobuf bodies; anything else is a 404/415."""

    server: _OtlpHttpServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._reply(404, b"", "text/plain")
            return
        if "protobuf" not in (self.headers.get("Content-Type") or ""):
            self._reply(415, b"only application/x-protobuf", "text/plain")
            return
        spans = decode_export_request(body, self.headers.get("Content-Encoding") or "")
        self.server.collector._record(dict(self.headers.items()), body, spans)
        response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self._reply(200, response, "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _OtlpHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, collector: OtlpReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHttpHandler)
        self.collector = collector


class OtlpReceiver(_SpanCollector):
    """OTLP/HTTP protobuf receiver on 127.0.0.1 with a random port, served from a daemon thread."""

    def __init__(self) -> None:
        super().__init__()
        self._server: _OtlpHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    def start(self) -> OtlpReceiver:
        """Bind and serve in a daemon thread; returns self."""
        self._server = _OtlpHttpServer(self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        """The bound TCP port (still known after stop())."""
        assert self._port, "receiver not started"
        return self._port

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT, for OTEL_EXPORTER_OTLP_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The full traces URL, for OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""
        return f"{self.base_url}{TRACES_PATH}"


class GrpcOtlpReceiver(_SpanCollector):
    """OTLP/gRPC TraceService receiver on 127.0.0.1 with a random port."""

    def __init__(self) -> None:
        super().__init__()
        self._server: Any = None
        self._port = 0

    def start(self) -> GrpcOtlpReceiver:
        """Start the gRPC server; returns self."""
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        collector = self

        class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                metadata = context.invocation_metadata()
                headers = {key: value for key, value in metadata if isinstance(value, str)}
                collector._record(headers, request.SerializeToString(), spans_from_request(request))
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(), self._server)
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop the server without a grace period."""
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._port

    @property
    def endpoint(self) -> str:
        """127.0.0.1:PORT, for OTEL_EXPORTER_OTLP_ENDPOINT with OTEL_EXPORTER_OTLP_PROTOCOL=grpc."""
        return f"127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT (the gRPC exporter treats http:// as insecure)."""
        return f"http://{self.endpoint}"


def _jaeger_tag_value(tag: Any) -> Any:
    """Plain value of a Jaeger thrift Tag (vType: 0 string, 1 double, 2 bool, 3 long, 4 binary)."""
    return {0: tag.vStr, 1: tag.vDouble, 2: tag.vBool, 3: tag.vLong, 4: tag.vBinary}.get(tag.vType)


def _jaeger_id(value: int, bits: int) -> str:
    """Jaeger thrift ids are signed i64; render them as unsigned hex."""
    return f"{value & ((1 << bits) - 1):0{bits // 4}x}" if value else ""


class JaegerUdpReceiver(_SpanCollector):
    """Jaeger agent stand-in: UDP on 127.0.0.1, decodes Agent.emitBatch in compact thrift."""

    def __init__(self) -> None:
        super().__init__()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._port = 0

    def start(self) -> JaegerUdpReceiver:
        """Bind the UDP socket and read datagrams in a daemon thread; returns self."""
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._port = self._socket.getsockname()[1]
        self._socket.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, name="jaeger-udp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading and close the socket."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @property
    def port(self) -> int:
        """The bound UDP port (OTEL_EXPORTER_JAEGER_AGENT_PORT)."""
        assert self._port, "receiver not started"
        return self._port

    @property
    def endpoint(self) -> str:
        """127.0.0.1:PORT."""
        return f"127.0.0.1:{self.port}"

    base_url = endpoint

    def _serve(self) -> None:
        assert self._socket is not None
        while not self._stopping.is_set():
            try:
                datagram, _ = self._socket.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self._record({}, datagram, decode_jaeger_emit_batch(datagram))


def decode_jaeger_emit_batch(datagram: bytes) -> list[ReceivedSpan]:
    """Decode one Agent.emitBatch compact-thrift datagram into spans."""
    from thrift.protocol.TCompactProtocol import TCompactProtocol
    from thrift.transport.TTransport import TMemoryBuffer

    from tracing.jaeger import jaeger_thrift_modules

    agent, _ = jaeger_thrift_modules()
    protocol = TCompactProtocol(TMemoryBuffer(datagram))
    protocol.readMessageBegin()
    args = agent.emitBatch_args()
    args.read(protocol)
    protocol.readMessageEnd()
    batch = args.batch
    service_name = batch.process.serviceName
    resource = {tag.key: _jaeger_tag_value(tag) for tag in batch.process.tags or []}
    resource["service.name"] = service_name
    spans = []
    for span in batch.spans or []:
        tags = {tag.key: _jaeger_tag_value(tag) for tag in span.tags or []}
        trace_id = (span.traceIdHigh & (2**64 - 1)) << 64 | (span.traceIdLow & (2**64 - 1))
        events = [
            (
                str(next((t.vStr for t in log.fields if t.key == "event"), "")),
                {t.key: _jaeger_tag_value(t) for t in log.fields if t.key != "event"},
            )
            for log in span.logs or []
        ]
        spans.append(
            ReceivedSpan(
                name=span.operationName,
                trace_id=f"{trace_id:032x}",
                span_id=_jaeger_id(span.spanId, 64),
                parent_id=_jaeger_id(span.parentSpanId, 64),
                kind=str(tags.get("span.kind", "internal")).upper(),
                service_name=service_name,
                attributes=tags,
                events=events,
                status_code=str(tags.get("otel.status_code", "UNSET")),
                start_ns=span.startTime * 1000,
                end_ns=(span.startTime + span.duration) * 1000,
                resource=resource,
            )
        )
    return spans


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A started OTLP/HTTP receiver, stopped after the test."""
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def grpc_otlp_receiver() -> Iterator[GrpcOtlpReceiver]:
    """A started OTLP/gRPC receiver, stopped after the test."""
    with GrpcOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def jaeger_receiver() -> Iterator[JaegerUdpReceiver]:
    """A started Jaeger UDP (compact thrift) receiver, stopped after the test."""
    with JaegerUdpReceiver() as receiver:
        yield receiver

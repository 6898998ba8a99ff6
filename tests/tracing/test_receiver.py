"""POST /v1/traces: OTLP/HTTP protobuf and JSON (hex ids), gzip, chunked bodies, errors per the specification."""

from __future__ import annotations

import gzip
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_trace_id
from rest_framework.test import APIClient

from tests.live import LiveService, start_service, wait_until
from tracing.models import Span
from tracing.store import receiver
from tracing.store.writer import SpanWriter, span_writer

pytestmark = pytest.mark.django_db(transaction=True)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
CHUNK = 100


def sdk_spans(service: str = "receiver-test") -> tuple[list[ReadableSpan], str]:
    """A CLI-like root with an HTTP client child, made by a local SDK provider; and their trace id."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("flowexec run", attributes={"flow.name": "greet"}) as root:  # noqa: SIM117
        with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT) as client:
            client.add_event("sent", {"bytes": 12})
    return list(memory.get_finished_spans()), format_trace_id(root.get_span_context().trace_id)


def protobuf_body(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


# Recent, whole seconds: spans older than the retention period are pruned as soon as they are written.
START_NS = (time.time_ns() // 10**9 - 60) * 10**9


def node_json(trace_id: str = TRACE_ID, *, extra_spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """OTLP/JSON as the Node.js exporter writes it: hex ids, integer enums, int64 as strings."""
    span = {
        "traceId": trace_id,
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "GET /api/flows/",
        "kind": 3,
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(START_NS + 1_250_000_000),
        "attributes": [
            {"key": "http.status_code", "value": {"intValue": "200"}},
            {"key": "retry", "value": {"boolValue": True}},
            {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"doubleValue": 1.5}]}}},
        ],
        "events": [{"timeUnixNano": str(START_NS + 500_000_000), "name": "response", "attributes": []}],
        "status": {"code": 2, "message": "upstream failed"},
        "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}],
        "droppedAttributesCount": 0,
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "node-cli"}}]}
    spans = [span, *(extra_spans or [])]
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}]}]}


def post(client: APIClient, body: bytes, content_type: str, **headers: str) -> Any:
    return client.post("/v1/traces", data=body, content_type=content_type, headers=headers)


def stored(trace_id: str) -> dict[str, Span]:
    assert span_writer.flush(10)
    return {span.name: span for span in Span.objects.filter(trace_id=trace_id)}


def test_protobuf_from_the_sdk_encoder_is_stored(api_client: APIClient) -> None:
    spans, trace_id = sdk_spans()
    response = post(api_client, protobuf_body(spans), PROTOBUF)
    assert response.status_code == 200 and response["Content-Type"] == PROTOBUF
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    rows = stored(trace_id)
    assert set(rows) == {"flowexec run", "POST"}
    assert rows["POST"].parent_id == rows["flowexec run"].span_id and rows["POST"].kind == "CLIENT"
    assert rows["POST"].service_name == "receiver-test" and rows["POST"].events[0]["attributes"] == {"bytes": 12}


def test_gzip_protobuf_is_stored(api_client: APIClient) -> None:
    spans, trace_id = sdk_spans()
    response = post(api_client, gzip.compress(protobuf_body(spans)), PROTOBUF, content_encoding="gzip")
    assert response.status_code == 200
    assert len(stored(trace_id)) == 2


def test_json_with_hex_ids_is_stored_with_those_ids(api_client: APIClient) -> None:
    response = post(api_client, json.dumps(node_json()).encode(), "application/json; charset=utf-8")
    assert response.status_code == 200 and response["Content-Type"] == JSON
    assert response.json() == {}
    span = stored(TRACE_ID)["GET /api/flows/"]
    assert (span.span_id, span.parent_id) == ("eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert span.kind == "CLIENT" and span.status == "ERROR" and span.status_message == "upstream failed"
    assert span.service_name == "node-cli" and span.duration_ns == 1_250_000_000
    assert span.attributes == {"http.status_code": 200, "retry": True, "tags": ["a", 1.5]}
    assert span.events == [{"name": "response", "time_unix_nano": START_NS + 500_000_000, "attributes": {}}]


def test_spans_with_invalid_ids_are_rejected_as_partial_success(api_client: APIClient) -> None:
    bad = {"traceId": "abcd", "spanId": "0102030405060708", "name": "short trace id"}
    response = post(api_client, json.dumps(node_json(extra_spans=[bad])).encode(), JSON)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "trace_id must be 16 bytes" in response.json()["partialSuccess"]["errorMessage"]
    assert set(stored(TRACE_ID)) == {"GET /api/flows/"}


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "message"),
    [
        pytest.param(b"\xff\xfe not protobuf", PROTOBUF, {}, "invalid protobuf", id="protobuf-garbage"),
        pytest.param(b"{not json", JSON, {}, "invalid JSON", id="json-garbage"),
        pytest.param(b"[1, 2]", JSON, {}, "not an object", id="json-array"),
        pytest.param(json.dumps(node_json("zz" * 16)).encode(), JSON, {}, "traceId 'zzzz", id="json-base64-not-hex-id"),
        pytest.param(
            json.dumps({"resourceSpans": "nope"}).encode(), JSON, {}, "invalid OTLP/JSON", id="json-wrong-shape"
        ),
        pytest.param(b"\x1f\x8b not gzip", PROTOBUF, {"content_encoding": "gzip"}, "gzip", id="bad-gzip"),
    ],
)
def test_undecodable_bodies_get_400_with_a_status_and_store_nothing(
    api_client: APIClient, body: bytes, content_type: str, headers: dict[str, str], message: str
) -> None:
    response = post(api_client, body, content_type, **headers)
    assert response.status_code == 400 and response["Content-Type"] == content_type
    if content_type == PROTOBUF:
        status = status_pb2.Status.FromString(response.content)
        assert (status.code, message in status.message) == (3, True), status.message
    else:
        assert response.json()["code"] == 3 and message in response.json()["message"]
    assert span_writer.flush(10)
    assert Span.objects.count() == 0


def test_other_content_types_and_encodings_get_415(api_client: APIClient) -> None:
    spans, _ = sdk_spans()
    assert post(api_client, b"hello", "text/plain").status_code == 415
    response = post(api_client, protobuf_body(spans), PROTOBUF, content_encoding="br")
    assert response.status_code == 415 and "br" in status_pb2.Status.FromString(response.content).message


def test_bodies_over_the_limit_get_413_before_or_after_gunzip(api_client: APIClient, settings: Any) -> None:
    settings.FLOWEXEC_OTLP_MAX_BYTES = 1000
    assert post(api_client, b"\0" * 1001, PROTOBUF).status_code == 413
    bomb = gzip.compress(b"\0" * 100_000)
    assert len(bomb) < 1000
    response = post(api_client, bomb, PROTOBUF, content_encoding="gzip")
    assert response.status_code == 413 and status_pb2.Status.FromString(response.content).code == 8


def test_anonymous_and_bad_token_requests_are_refused() -> None:
    spans, _ = sdk_spans()
    assert post(APIClient(), protobuf_body(spans), PROTOBUF).status_code == 401
    response = post(APIClient(), protobuf_body(spans), PROTOBUF, authorization="Token not-a-token")
    assert response.status_code == 401
    assert span_writer.flush(10) and Span.objects.count() == 0


def test_anonymous_requests_are_stored_when_receiver_auth_is_off(settings: Any) -> None:
    settings.FLOWEXEC_OTLP_RECEIVER_AUTH = False
    spans, trace_id = sdk_spans()
    assert post(APIClient(), protobuf_body(spans), PROTOBUF).status_code == 200
    assert len(stored(trace_id)) == 2


def test_a_full_writer_queue_answers_503_with_retry_after(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver, "span_writer", SpanWriter(max_queued=1))
    spans, _ = sdk_spans()
    response = post(api_client, protobuf_body(spans), PROTOBUF)
    assert response.status_code == 503 and response["Retry-After"]
    assert Span.objects.count() == 0


def test_a_request_with_no_spans_is_accepted(api_client: APIClient) -> None:
    response = post(api_client, ExportTraceServiceRequest().SerializeToString(), PROTOBUF)
    assert response.status_code == 200 and response.content == b""


# --- over real sockets: chunked bodies without Content-Length -------------------------------------


def post_chunked(url: str, body: bytes, headers: dict[str, str], *, connection: Any = None) -> tuple[int, bytes]:
    """POST body with Transfer-Encoding: chunked and no Content-Length, as Node's exporter does."""
    parts = urlsplit(url)
    conn = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    pieces = iter([body[i : i + CHUNK] for i in range(0, len(body), CHUNK)])
    conn.request("POST", parts.path, body=pieces, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


@pytest.fixture
def token_headers(api_client: APIClient) -> dict[str, str]:
    return {"Authorization": api_client._credentials["HTTP_AUTHORIZATION"]}


def test_chunked_bodies_are_read_whole_under_the_development_server(
    live_server: Any, token_headers: dict[str, str], settings: Any
) -> None:
    spans, trace_id = sdk_spans()
    body = protobuf_body(spans)
    assert len(body) > 2 * CHUNK, "several chunks"
    conn = http.client.HTTPConnection(urlsplit(live_server.url).hostname, urlsplit(live_server.url).port, timeout=30)
    url = live_server.url + "/v1/traces"
    assert post_chunked(url, body, {**token_headers, "Content-Type": PROTOBUF}, connection=conn)[0] == 200
    json_body = gzip.compress(json.dumps(node_json()).encode())
    headers = {**token_headers, "Content-Type": JSON, "Content-Encoding": "gzip"}
    assert post_chunked(url, json_body, headers, connection=conn)[0] == 200
    assert len(stored(trace_id)) == 2 and len(stored(TRACE_ID)) == 1

    settings.FLOWEXEC_OTLP_MAX_BYTES = len(body) - 1
    socket = conn.sock
    assert post_chunked(url, body, {**token_headers, "Content-Type": PROTOBUF}, connection=conn)[0] == 413
    assert conn.sock is socket is not None
    # The oversize body was consumed to its end: the kept-alive connection still parses requests.
    assert post_chunked(url, b"junk", {**token_headers, "Content-Type": PROTOBUF}, connection=conn)[0] == 400


def test_malformed_chunked_framing_gets_400(live_server: Any, token_headers: dict[str, str]) -> None:
    parts = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("POST", "/v1/traces")
    for name, value in {**token_headers, "Content-Type": PROTOBUF, "Transfer-Encoding": "chunked"}.items():
        conn.putheader(name, value)
    conn.endheaders(b"zz\r\nhello\r\n0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 400 and b"chunk size" in response.read()


# --- the real service, under runserver and gunicorn ------------------------------------------------


@pytest.fixture(scope="module", params=["runserver", "gunicorn"])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    live = start_service(tmp_path_factory.mktemp(request.param), server=request.param)
    yield live
    live.stop()


def wait_for_trace(service: LiveService, trace_id: str, span_count: int) -> dict[str, Any]:
    def loaded() -> dict[str, Any] | None:
        response = service.request("GET", f"/api/traces/{trace_id}/")
        document = response.json() if response.status == 200 else None
        return document if document and document["span_count"] >= span_count else None

    return wait_until(loaded, timeout=30, message=f"{span_count} spans of trace {trace_id}")


@pytest.mark.slow
@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_the_real_otlp_http_exporter_is_accepted(service: LiveService, compression: Compression) -> None:
    spans, trace_id = sdk_spans("otlp-exporter")
    exporter = OTLPSpanExporter(endpoint=service.url + "/v1/traces", headers=service.auth, compression=compression)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    tree = wait_for_trace(service, trace_id, 2)
    assert tree["services"] == ["otlp-exporter"]
    assert [span["name"] for span in tree["spans"]] == ["flowexec run"]
    assert [child["name"] for child in tree["spans"][0]["children"]] == ["POST"]


@pytest.mark.slow
def test_json_with_hex_ids_is_accepted(service: LiveService) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = service.request(
        "POST", "/v1/traces", body=json.dumps(node_json(trace_id)).encode(), headers={"Content-Type": JSON}
    )
    assert response.status == 200, response.data
    span = wait_for_trace(service, trace_id, 1)["spans"][0]
    assert (span["span_id"], span["parent_id"], span["service_name"]) == (
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
        "node-cli",
    )


@pytest.mark.slow
@pytest.mark.parametrize("media", [PROTOBUF, JSON])
def test_chunked_requests_without_content_length_are_accepted(service: LiveService, media: str) -> None:
    spans, trace_id = sdk_spans("chunked-sender")
    if media == PROTOBUF:
        body = protobuf_body(spans)
    else:
        trace_id = "0123456789abcdef0123456789abcdef"
        body = json.dumps(node_json(trace_id)).encode()
    status, content = post_chunked(service.url + "/v1/traces", body, {**service.auth, "Content-Type": media})
    assert status == 200, content
    tree = wait_for_trace(service, trace_id, 1)
    assert tree["span_count"] == (2 if media == PROTOBUF else 1)


@pytest.mark.slow
def test_garbage_and_anonymous_requests_are_refused(service: LiveService) -> None:
    status, content = post_chunked(
        service.url + "/v1/traces", b"\xff" * 3000, {**service.auth, "Content-Type": PROTOBUF}
    )
    assert status == 400 and status_pb2.Status.FromString(content).code == 3
    anonymous = service.http.request(
        "POST", service.url + "/v1/traces", body=b"", headers={"Content-Type": PROTOBUF}, timeout=30
    )
    assert anonymous.status == 401


def test_nul_characters_are_replaced_so_every_database_takes_the_span(api_client: APIClient) -> None:
    document = node_json()
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["name"] = "nul\x00name"
    span["attributes"] = [{"key": "k\x00", "value": {"stringValue": "v\x00"}}]
    assert post(api_client, json.dumps(document).encode(), JSON).status_code == 200
    stored_span = stored(TRACE_ID)["nul\ufffdname"]
    assert stored_span.attributes == {"k\ufffd": "v\ufffd"}

"""OTLP/HTTP trace export requests (protobuf or JSON, maybe gzip) to store rows, queued for the writer."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as OtlpStatus

from tracing.store.body import BodyTooLarge
from tracing.store.rows import SpanRow, event_entry, json_attributes, span_row
from tracing.store.writer import span_writer

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = frozenset({PROTOBUF, JSON})

KIND_NAMES = {
    OtlpSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    OtlpSpan.SPAN_KIND_SERVER: "SERVER",
    OtlpSpan.SPAN_KIND_CLIENT: "CLIENT",
    OtlpSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    OtlpSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}
STATUS_NAMES = {OtlpStatus.STATUS_CODE_OK: "OK", OtlpStatus.STATUS_CODE_ERROR: "ERROR"}
# OTLP/JSON carries these ids as hex; protobuf's JSON mapping would read them as base64.
ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


class UnsupportedMediaType(Exception):
    """Neither OTLP content type, or an encoding other than gzip."""


class OtlpDecodeError(Exception):
    """The body is not an OTLP ExportTraceServiceRequest."""


class SpansForbidden(Exception):
    """The sender may not add spans to a trace of the request."""


class StoreBusy(Exception):
    """The writer's queue is full; the client should retry later."""


@dataclass(frozen=True)
class ReceiveResult:
    """What happened to the spans of one request."""

    rejected: int
    message: str = ""


def media_type(content_type: str) -> str:
    """The OTLP media type of a Content-Type header, parameters dropped; UnsupportedMediaType otherwise."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise UnsupportedMediaType(f"content type {media or '(none)'!r} is not {PROTOBUF} or {JSON}")
    return media


def receive(
    body: bytes,
    *,
    media: str,
    content_encoding: str,
    limit: int,
    sender_id: int | None = None,
    closed_traces: Callable[[set[str]], set[str]] | None = None,
) -> ReceiveResult:
    """Decode one export request and queue its valid spans for the writer; nothing is queued on error.

    Rows are stamped with sender_id; closed_traces names the trace ids this sender may not write into,
    and any span in one of them refuses the whole request (SpansForbidden).
    """
    request = decode_request(decompress(body, content_encoding, limit), media)
    rows, rejected, message = rows_from_otlp(request)
    if closed_traces is not None and rows and (closed := closed_traces({row["trace_id"] for row in rows})):
        raise SpansForbidden(f"not allowed to add spans to trace {sorted(closed)[0]}")
    rows = [{**row, "sender_id": sender_id} for row in rows]
    if rows and not span_writer.submit(rows):
        raise StoreBusy("span store queue is full")
    return ReceiveResult(rejected=rejected, message=message)


def decompress(body: bytes, content_encoding: str, limit: int) -> bytes:
    """Undo Content-Encoding gzip, never inflating past limit bytes."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"content encoding {encoding!r} is not gzip")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpDecodeError(f"invalid gzip body: {exc}") from exc
    if len(data) > limit:
        raise BodyTooLarge
    if not inflater.eof:
        raise OtlpDecodeError("truncated gzip body")
    return data


def decode_request(data: bytes, media: str) -> ExportTraceServiceRequest:
    """Parse protobuf or OTLP/JSON (hex ids) into an ExportTraceServiceRequest."""
    if media == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(data)
        except DecodeError as exc:
            raise OtlpDecodeError(f"invalid protobuf body: {exc}") from exc
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OtlpDecodeError(f"invalid JSON body: {exc}") from exc
    except RecursionError as exc:
        raise OtlpDecodeError("JSON body is nested too deeply") from exc
    if not isinstance(document, dict):
        raise OtlpDecodeError("JSON body is not an object")
    for holder in _id_holders(document):
        for field in ID_FIELDS:
            if isinstance(holder.get(field), str):
                holder[field] = _hex_to_base64(holder[field], field)
    try:
        # Unknown fields are ignored, as the OTLP specification asks of receivers.
        return json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
        raise OtlpDecodeError(f"invalid OTLP/JSON body: {exc}") from exc


def _id_holders(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every span and span link object of an OTLP/JSON document (shapes are checked later by ParseDict)."""
    for resource_spans in _objects(document, "resourceSpans", "resource_spans"):
        for scope_spans in _objects(resource_spans, "scopeSpans", "scope_spans"):
            for span in _objects(scope_spans, "spans"):
                yield span
                yield from _objects(span, "links")


def _objects(parent: dict[str, Any], *keys: str) -> Iterator[dict[str, Any]]:
    for key in keys:
        items = parent.get(key)
        if isinstance(items, list):
            yield from (item for item in items if isinstance(item, dict))


def _hex_to_base64(value: str, field: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError as exc:
        raise OtlpDecodeError(f"{field} {value[:40]!r} is not hex") from exc


def rows_from_otlp(request: ExportTraceServiceRequest) -> tuple[list[SpanRow], int, str]:
    """Rows for the spans with valid ids, the number rejected, and why."""
    rows: list[SpanRow] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        resource = otlp_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if _valid_ids(span):
                    rows.append(row_from_otlp(span, resource))
                else:
                    rejected += 1
    if not rejected:
        return rows, 0, ""
    return rows, rejected, f"{rejected} spans rejected: trace_id must be 16 bytes and span_id 8, not all zero"


def _valid_ids(span: OtlpSpan) -> bool:
    return (
        len(span.trace_id) == 16
        and any(span.trace_id)
        and len(span.span_id) == 8
        and any(span.span_id)
        and len(span.parent_span_id) in (0, 8)
    )


def row_from_otlp(span: OtlpSpan, resource: dict[str, Any]) -> SpanRow:
    """Convert one OTLP span (with its resource's attributes) into a store row."""
    return span_row(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() if any(span.parent_span_id) else "",
        name=span.name,
        kind=KIND_NAMES.get(span.kind, "INTERNAL"),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status=STATUS_NAMES.get(span.status.code, "UNSET"),
        status_message=span.status.message,
        attributes=otlp_attributes(span.attributes),
        events=[
            event_entry(event.name, event.time_unix_nano, otlp_attributes(event.attributes)) for event in span.events
        ],
        resource=resource,
    )


def otlp_attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP KeyValue list as a JSON object."""
    return json_attributes({item.key: otlp_value(item.value) for item in attributes})


def otlp_value(value: AnyValue) -> Any:
    """One OTLP AnyValue as a Python value."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [otlp_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: otlp_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def response_body(result: ReceiveResult, media: str) -> bytes:
    """ExportTraceServiceResponse, with partial_success only when spans were rejected."""
    response = ExportTraceServiceResponse()
    if result.rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=result.rejected, error_message=result.message)
        )
    return _encode(response, media)


def status_body(message: str, media: str, *, code: int = code_pb2.INVALID_ARGUMENT) -> bytes:
    """google.rpc.Status body for an error response, in the request's encoding."""
    return _encode(status_pb2.Status(code=code, message=message), media)


def _encode(message: Any, media: str) -> bytes:
    if media == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()

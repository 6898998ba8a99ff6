"""The CLI's OTLP/HTTP span exporter: protobuf written by hand, POSTed with the urllib3 the CLI already imports.

Why not the SDK's OTLPSpanExporter: building it cost a CLI run ~100 ms of its ~250 ms (measured with pyinstrument
and `python -X importtime` on these 2-core machines): it imports `requests` (and charset_normalizer, http.cookiejar)
and the generated protobuf classes with the protobuf runtime, and builds a requests Session. The wire format of
ExportTraceServiceRequest is small and stable (opentelemetry-proto's trace.proto, common.proto, resource.proto:
varints, fixed64 times, length-delimited strings and messages), so encode_spans writes it directly, field for field
as the SDK's own encoder (opentelemetry.exporter.otlp.proto.common.trace_encoder) fills the messages; a test
compares the bytes. gRPC still goes through the SDK's exporter (tracing.exporters).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import urllib3
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Link
    from opentelemetry.trace.span import SpanContext

# tracing.exporters.EXPORTER_LOGGERS names it: its lines become the one "export failing" warning.
logger = logging.getLogger("flowexec.cli.otlp")

# Span.flags (trace.proto SpanFlags): the SDK always says whether it knows the parent is remote.
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
CONTENT_TYPE = "application/x-protobuf"

# Wire types.
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class _Unencodable(ValueError):
    """An attribute value OTLP has no encoding for (the SDK's encoder logs and drops those too)."""


def _varint(value: int) -> bytes:
    """Base-128 varint; negative int64 values as their 64-bit two's complement (10 bytes), as protobuf does."""
    value &= 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _message(number: int, payload: bytes) -> bytes:
    """A length-delimited field (sub-message, string, bytes), written even when empty (it is present)."""
    return _key(number, _LENGTH) + _varint(len(payload)) + payload


def _utf8(value: str) -> bytes:
    """UTF-8 for a protobuf string; a lone surrogate (argv's undecodable bytes) becomes "?" instead of failing."""
    return value.encode("utf-8", "replace")


def _text(number: int, value: str | None) -> bytes:
    """A proto3 string field: omitted when empty, the default."""
    return _message(number, _utf8(value)) if value else b""


def _uint(number: int, value: int | None) -> bytes:
    """A proto3 varint field (uint32, enum): omitted when zero."""
    return _key(number, _VARINT) + _varint(value) if value else b""


def _fixed64(number: int, value: int | None) -> bytes:
    return _key(number, _FIXED64) + struct.pack("<Q", value) if value else b""


def _fixed32(number: int, value: int | None) -> bytes:
    return _key(number, _FIXED32) + struct.pack("<I", value) if value else b""


def _any_value(value: Any) -> bytes:
    """AnyValue: one member of its oneof, which protobuf writes even when it holds the default."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _key(2, _VARINT) + _varint(int(value))
    if isinstance(value, str):
        return _message(1, _utf8(value))
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _Unencodable(f"integer {value} does not fit in int64")
        return _key(3, _VARINT) + _varint(value)
    if isinstance(value, float):
        return _key(4, _FIXED64) + struct.pack("<d", value)
    if isinstance(value, bytes):
        return _message(7, value)
    if isinstance(value, Sequence):
        return _message(5, b"".join(_message(1, _any_value(item)) for item in value))
    if isinstance(value, Mapping):
        return _message(6, b"".join(_message(1, _key_value(str(k), v)) for k, v in value.items()))
    raise _Unencodable(f"invalid type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _text(1, key) + _message(2, _any_value(value))


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue; a value OTLP cannot carry is dropped (and logged), the others kept."""
    encoded = []
    for key, value in (attributes or {}).items():
        try:
            encoded.append(_message(number, _key_value(key, value)))
        except _Unencodable as exc:
            logger.debug("attribute %r not exported: %s", key, exc)
    return b"".join(encoded)


def _flags(context: SpanContext | None) -> int:
    return FLAG_HAS_IS_REMOTE | (FLAG_IS_REMOTE if context is not None and context.is_remote else 0)


def _trace_state(context: SpanContext) -> str:
    return ",".join(f"{key}={value}" for key, value in (context.trace_state or {}).items())


def _event(event: Event) -> bytes:
    return (
        _fixed64(1, event.timestamp)
        + _text(2, event.name)
        + _attributes(3, event.attributes)
        + _uint(4, event.dropped_attributes)
    )


def _link(link: Link) -> bytes:
    context = link.context
    return (
        _message(1, context.trace_id.to_bytes(16, "big"))
        + _message(2, context.span_id.to_bytes(8, "big"))
        + _text(3, _trace_state(context))
        + _attributes(4, link.attributes)
        + _uint(5, link.dropped_attributes)
        + _fixed32(6, _flags(context))
    )


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    parent = span.parent
    status = span.status
    return b"".join(
        (
            _message(1, context.trace_id.to_bytes(16, "big")),
            _message(2, context.span_id.to_bytes(8, "big")),
            _text(3, _trace_state(context)),
            _message(4, parent.span_id.to_bytes(8, "big")) if parent else b"",
            _text(5, span.name),
            # trace.proto's SpanKind counts from SPAN_KIND_UNSPECIFIED = 0; the API's from INTERNAL = 0.
            _uint(6, span.kind.value + 1),
            _fixed64(7, span.start_time),
            _fixed64(8, span.end_time),
            _attributes(9, span.attributes),
            _uint(10, span.dropped_attributes),
            b"".join(_message(11, _event(event)) for event in span.events),
            _uint(12, span.dropped_events),
            b"".join(_message(13, _link(link)) for link in span.links),
            _uint(14, span.dropped_links),
            _message(15, _text(2, status.description) + _uint(3, status.status_code.value)),
            _fixed32(16, _flags(parent)),
        )
    )


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """A serialized ExportTraceServiceRequest: spans grouped by resource, then instrumentation scope, in order."""
    grouped: dict[Any, dict[Any, list[bytes]]] = {}
    for span in spans:
        by_scope = grouped.setdefault(span.resource, {})
        by_scope.setdefault(span.instrumentation_scope or None, []).append(_span(span))
    resource_spans = []
    for resource, by_scope in grouped.items():
        scope_spans = []
        for scope, encoded in by_scope.items():
            scope_message = (
                _text(1, scope.name) + _text(2, scope.version) + _attributes(3, scope.attributes) if scope else b""
            )
            scope_spans.append(
                _message(
                    2,
                    _message(1, scope_message)
                    + b"".join(_message(2, span) for span in encoded)
                    + _text(3, scope.schema_url if scope else None),
                )
            )
        resource_spans.append(
            _message(
                1,
                _message(1, _attributes(1, resource.attributes))
                + b"".join(scope_spans)
                + _text(3, resource.schema_url),
            )
        )
    return b"".join(resource_spans)


class OtlpHttpSpanExporter(SpanExporter):
    """POST encode_spans(...) to an OTLP/HTTP traces endpoint: one attempt within `timeout` seconds, never raises.

    No retries: a CLI exports once, at exit, under a bounded flush; a backend that cannot answer within the
    budget costs the run at most that budget.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        compression: str = "",
        user_agent: str,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.compression = compression if compression in ("gzip", "deflate") else ""
        self._headers = {"Content-Type": CONTENT_TYPE, "User-Agent": user_agent, **headers}
        if self.compression:
            self._headers["Content-Encoding"] = self.compression
        self._pool = pool or urllib3.PoolManager(retries=False)
        self._shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """One POST of the batch; FAILURE (logged) on any error or non-2xx answer."""
        if self._shut_down:
            return SpanExportResult.FAILURE
        body = encode_spans(spans)
        if self.compression == "gzip":
            # Lazy: only OTEL_EXPORTER_OTLP_COMPRESSION asks for it.
            import gzip

            body = gzip.compress(body)
        elif self.compression == "deflate":
            # Lazy: as gzip.
            import zlib

            body = zlib.compress(body)
        try:
            response = self._pool.request(
                "POST",
                self.endpoint,
                body=body,
                headers=self._headers,
                timeout=urllib3.Timeout(total=self.timeout),
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            logger.warning("POST %s failed: %s", self.endpoint, exc)
            return SpanExportResult.FAILURE
        if 200 <= response.status < 300:
            return SpanExportResult.SUCCESS
        detail = response.data[:200].decode("utf-8", "replace").strip()
        logger.warning("POST %s answered %d %s", self.endpoint, response.status, detail)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Refuse later exports (the pool belongs to whoever passed it in)."""
        self._shut_down = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True

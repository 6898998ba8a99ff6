"""Read a request body whole and bounded, including chunked bodies sent without Content-Length."""

from __future__ import annotations

from typing import BinaryIO

from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest

READ_SIZE = 64 * 1024
MAX_CHUNK_LINE = 4096
HEX_DIGITS = b"0123456789abcdefABCDEF"


class BodyTooLarge(Exception):
    """The body is larger than the configured limit."""


class BadChunkedBody(Exception):
    """The chunked transfer coding is malformed or the body was cut short."""


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """Return the body, at most limit bytes; Django reads chunked bodies as empty, so read those here."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise BodyTooLarge
    if length or "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return request.read()
    stream = request.META["wsgi.input"]
    if isinstance(stream, LimitedStream):
        # runserver hands Django the socket wrapped in LimitedStream(rfile, 0) and leaves the chunk
        # framing in place; the socket file is what LimitedStream's bound methods belong to.
        return _read_chunked(stream._readline.__self__, limit)
    # gunicorn (and other servers) decode the chunks themselves and end wsgi.input at the body's end.
    return _read_to_eof(stream, limit)


def _read_to_eof(stream: BinaryIO, limit: int) -> bytes:
    body = bytearray()
    while chunk := stream.read(READ_SIZE):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def _read_chunked(raw: BinaryIO, limit: int) -> bytes:
    # The whole chunked body is consumed even when too large, so a kept-alive connection stays in sync.
    body = bytearray()
    too_large = False
    while size := _chunk_size(raw.readline(MAX_CHUNK_LINE + 1)):
        too_large = too_large or len(body) + size > limit
        _read_exact(raw, size, None if too_large else body)
        if raw.readline(MAX_CHUNK_LINE + 1).strip():
            raise BadChunkedBody("chunk data longer than its size")
    while raw.readline(MAX_CHUNK_LINE + 1).strip():
        pass  # trailer fields carry nothing OTLP uses
    if too_large:
        raise BodyTooLarge
    return bytes(body)


def _chunk_size(line: bytes) -> int:
    if not line.endswith(b"\n"):
        raise BadChunkedBody("chunk size line missing or too long")
    digits = line.split(b";", 1)[0].strip()
    if not digits or digits.strip(HEX_DIGITS):
        raise BadChunkedBody(f"bad chunk size {line[:40]!r}")
    return int(digits, 16)


def _read_exact(raw: BinaryIO, size: int, into: bytearray | None) -> None:
    while size:
        data = raw.read(min(size, READ_SIZE))
        if not data:
            raise BadChunkedBody("body ended inside a chunk")
        size -= len(data)
        if into is not None:
            into += data

"""Request body parsers: a bounded raw read, then the engine's one document loader, never an unbounded parse."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from executions import conf, engine
from executions.engine.errors import FlowValidationError

READ_SIZE = 64 * 1024
TOO_BIG = "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE."


def read_limited(stream: Any, parser_context: Any) -> bytes:
    """The raw body, refused with RequestDataTooBig (413) past DATA_UPLOAD_MAX_MEMORY_SIZE before parsing."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    request = (parser_context or {}).get("request")
    if request is not None and limit is not None:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise RequestDataTooBig(TOO_BIG)
    body = bytearray()
    while chunk := stream.read(READ_SIZE):
        body += chunk
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig(TOO_BIG)
    return bytes(body)


class JSONBodyParser(BaseParser):
    """application/json bodies (executions): size- and depth-limited, a top-level object, every string storable."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = read_limited(stream, parser_context)
        try:
            return engine.load_document(
                raw,
                max_bytes=len(raw),  # already bounded by read_limited
                max_depth=int(conf.get("FLOWEXEC_MAX_BODY_DEPTH")),
                syntax="json",
                label="request body",
            )
        except FlowValidationError as exc:
            raise ParseError("; ".join(exc.problems)) from exc


class DefinitionJSONParser(BaseParser):
    """A flow definition posted as application/json, through the engine's definition loader."""

    media_type = "application/json"
    syntax = "json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = read_limited(stream, parser_context)
        # FlowValidationError (size, syntax, nesting, aliases, storability) answers 400 with its problems.
        return engine.load_document(raw, max_bytes=int(conf.get("FLOWEXEC_MAX_DEFINITION_BYTES")), syntax=self.syntax)


class DefinitionYAMLParser(DefinitionJSONParser):
    """A flow definition posted as application/yaml: the same loader (no anchors or aliases, bounded depth)."""

    media_type = "application/yaml"
    syntax = "yaml"

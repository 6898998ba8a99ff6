"""Request body parsers: bounded raw reads, then one loader per kind of body, never an unbounded parse."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from executions import conf, engine
from executions.documents import UnsafeDocument, check_document

READ_SIZE = 64 * 1024


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
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
    body = bytearray()
    while chunk := stream.read(READ_SIZE):
        body += chunk
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
    return bytes(body)


def definition_load(raw: bytes) -> dict[str, Any]:
    """A flow definition from JSON or YAML text through the engine's one loader, checked as a stored document."""
    try:
        document = engine.load(raw, max_bytes=int(conf.get("FLOWEXEC_MAX_DEFINITION_BYTES")))
        return check_document(document)
    except RecursionError as exc:
        # The parsers recurse per nesting level; a hostile document must be a 400, not a crashed worker.
        raise ParseError("definition is nested too deeply") from exc
    except UnsafeDocument as exc:
        raise ParseError(f"definition: {exc}") from exc


class JSONBodyParser(BaseParser):
    """application/json bodies: size-limited, depth-limited, every string storable."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = read_limited(stream, parser_context)
        try:
            document = json.loads(raw, parse_constant=_refuse_constant)
        except RecursionError as exc:
            raise ParseError("JSON body is nested too deeply") from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc
        if not isinstance(document, dict):
            raise ParseError("the body must be a JSON object")
        try:
            return check_document(document)
        except UnsafeDocument as exc:
            raise ParseError(f"body: {exc}") from exc


class DefinitionJSONParser(BaseParser):
    """A flow definition posted as application/json, loaded by the engine's definition loader."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return definition_load(read_limited(stream, parser_context))


class DefinitionYAMLParser(BaseParser):
    """A flow definition posted as application/yaml: the same loader (no aliases, bounded size and depth)."""

    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return definition_load(read_limited(stream, parser_context))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")

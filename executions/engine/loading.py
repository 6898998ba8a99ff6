"""The one loader every definition goes through: size, syntax, nesting and storability checks."""

# Order matters: the size limit applies to the raw bytes before any parsing, nesting is bounded
# before a recursive parser or encoder could hit Python's recursion limit, and YAML anchors and
# aliases are refused while composing, so a half-kilobyte "billion laughs" body never expands.

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .errors import FlowValidationError

DEFAULT_MAX_DEFINITION_BYTES = 256 * 1024
# Deepest nesting of objects and arrays a document may have; a flow needs a handful of levels.
DEFAULT_MAX_NESTING = 64
SYNTAXES = ("auto", "json", "yaml")
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def load_document(
    raw: str | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_DEFINITION_BYTES,
    max_depth: int = DEFAULT_MAX_NESTING,
    syntax: str = "auto",
    label: str = "definition",
) -> dict[str, Any]:
    """Parse JSON or YAML text into a JSON-serialisable object, or raise FlowValidationError.

    `label` names the document in messages ("definition", "request body").
    """
    if isinstance(raw, str):
        try:
            raw = raw.encode()
        except UnicodeEncodeError as exc:
            raise FlowValidationError([f"{label} is not valid Unicode: {exc.reason}"]) from exc
    _check_size(len(raw), max_bytes, label)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FlowValidationError([f"{label} is not UTF-8: {exc.reason} at byte {exc.start}"]) from exc
    if syntax not in SYNTAXES:
        raise ValueError(f"syntax must be one of {SYNTAXES}, not {syntax!r}")
    if syntax == "yaml":
        document = _yaml(text, max_depth, label, "not valid YAML")
    else:
        try:
            document = _json(text, max_depth)
        except _NotJson as exc:
            if syntax == "json":
                raise FlowValidationError([f"{label} is not valid JSON: {exc}"]) from exc
            document = _yaml(text, max_depth, label, "neither valid JSON nor YAML")
    return _normalise(document, max_depth, label)


def load(
    source: str | bytes | Mapping[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_DEFINITION_BYTES,
    max_depth: int = DEFAULT_MAX_NESTING,
) -> dict[str, Any]:
    """Load a definition from text (JSON or YAML) or an already-parsed mapping; FlowValidationError."""
    if not isinstance(source, Mapping):
        return load_document(source, max_bytes=max_bytes, max_depth=max_depth)
    document = _normalise(source, max_depth, "definition")
    _check_size(len(json.dumps(document, ensure_ascii=False).encode()), max_bytes, "definition")
    return document


def check_depth(value: Any, max_depth: int = DEFAULT_MAX_NESTING) -> None:
    """Refuse a parsed JSON-like value nested deeper than `max_depth` objects/arrays (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            raise FlowValidationError([f"document is nested too deeply (max {max_depth} levels)"])
        stack.extend((child, depth + 1) for child in children)


class _NotJson(Exception):
    """The text is not JSON; in "auto" mode it may still be YAML."""


def _json(text: str, max_depth: int) -> Any:
    """Parse JSON after a non-recursive nesting scan; refuse NaN and Infinity, which JSON has not."""
    depth = 0
    nested = text.lstrip()[:1] in ("[", "{")  # anything else is a scalar or not JSON at all
    for match in _JSON_TOKENS.finditer(text) if nested else ():
        token = match[0]
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise FlowValidationError([f"document is nested too deeply (max {max_depth} levels)"])
        elif token in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise _NotJson(str(exc)) from exc


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are JavaScript, not JSON, and no database stores them in a JSON column."""
    # Not a ValueError: that would send "auto" mode on to YAML, which reads NaN as a string.
    raise FlowValidationError([f"{name} is not a JSON number"])


def _yaml(text: str, max_depth: int, label: str, invalid: str) -> Any:
    """Parse one YAML document with the safe, alias-free, depth-bounded loader."""
    loader = _StrictLoader(text, max_depth)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise FlowValidationError([str(exc)]) from exc
    except yaml.YAMLError as exc:
        raise FlowValidationError([f"{label} is {invalid}: {' '.join(str(exc).split())}"]) from exc
    finally:
        loader.dispose()


class _Refused(yaml.YAMLError):
    """A YAML feature this loader refuses outright."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases and bounds nesting while composing."""

    def __init__(self, stream: str, max_depth: int):
        super().__init__(stream)
        self.max_depth = max_depth
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose as usual after refusing aliases, anchors and excessive depth."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(f"YAML anchors and aliases are not allowed (line {event.start_mark.line + 1})")
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise _Refused(f"document is nested too deeply (max {self.max_depth} levels)")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# Dates stay text: a definition is JSON data, and YAML 1.1 would turn `2024-01-01` into a date.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _normalise(document: Any, max_depth: int, label: str) -> dict[str, Any]:
    """Require a top-level object of plain JSON that every supported database can store."""
    if not isinstance(document, Mapping):
        raise FlowValidationError([f"{label} must be an object"])
    check_depth(document, max_depth)
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False)
        text.encode()
    except (TypeError, ValueError) as exc:
        raise FlowValidationError([f"{label} is not JSON-serialisable: {exc}"]) from exc
    if "\\u0000" in text.replace("\\\\", ""):
        raise FlowValidationError([f"{label} contains a NUL character, which databases cannot store"])
    return json.loads(text)


def _check_size(size: int, max_bytes: int, label: str) -> None:
    """Refuse documents over the size limit."""
    if size > max_bytes:
        raise FlowValidationError([f"{label} is too large: {size} bytes (max {max_bytes})"])

"""JSON-like request documents that are safe to store and render: bounded nesting, encodable text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from executions import conf


class UnsafeDocument(ValueError):
    """A document nested too deeply or carrying text that cannot be stored or rendered."""


def check_document(document: Any, *, max_depth: int | None = None) -> Any:
    """Return the document unchanged, or raise UnsafeDocument naming the first problem.

    Iterative, so a document nested deeper than Python's recursion limit is refused rather than crashing;
    every string (keys too) must encode as UTF-8 (no lone surrogates) and hold no NUL, which PostgreSQL refuses.
    """
    limit = int(conf.get("FLOWEXEC_MAX_BODY_DEPTH")) if max_depth is None else max_depth
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, Mapping | list):
            if depth > limit:
                raise UnsafeDocument(f"nested deeper than {limit} levels")
            if isinstance(value, Mapping):
                for key, item in value.items():
                    _check_text(str(key))
                    pending.append((item, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in value)
    return document


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise UnsafeDocument("text must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeDocument(f"text must be valid Unicode: {exc.reason} at position {exc.start}") from exc

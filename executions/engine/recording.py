"""What step spans record about content: redacted, JSON-encoded, size-capped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

ALWAYS_REDACTED = frozenset({"password", "token", "secret", "authorization", "api_key"})
REDACTED = "[REDACTED]"
TRUNCATED = "...[truncated]"


def redact(value: Any, keys: Iterable[str] = ()) -> Any:
    """Return a copy of a JSON-like value with values under sensitive keys replaced, at any depth."""
    sensitive = tuple({key.lower() for key in keys} | ALWAYS_REDACTED)
    return _redact(value, sensitive)


def _redact(value: Any, sensitive: tuple[str, ...]) -> Any:
    """Recursive worker of `redact`; a key is sensitive when it contains a sensitive word."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if any(word in str(key).lower() for word in sensitive) else _redact(item, sensitive)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, sensitive) for item in value]
    return value


def content(value: Any, *, keys: Iterable[str] = (), max_bytes: int = 4096) -> str:
    """Redact a value and encode it as JSON of at most `max_bytes` bytes (marked when truncated)."""
    text = json.dumps(redact(value, keys), default=str, sort_keys=True)
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    keep = max(max_bytes - len(TRUNCATED), 0)
    return encoded[:keep].decode(errors="ignore") + TRUNCATED

"""What step spans record about content: redacted by key, masked by value, JSON-encoded, size-capped."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tracing.redaction import mask, redact

TRUNCATED = "...[truncated]"


def content(value: Any, *, keys: Iterable[str] = (), secrets: Iterable[Any] = (), max_bytes: int = 4096) -> str:
    """Redact a value, mask secret values in it, and encode it as JSON of at most `max_bytes` bytes."""
    # Only a mapping has keys to redact, and only known secrets can be masked: most steps' content has neither.
    if isinstance(value, dict | list | tuple):
        value = redact(value, keys)
    text = json.dumps(value, default=str, sort_keys=True)
    if secrets:
        text = mask(text, secrets)
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    keep = max(max_bytes - len(TRUNCATED), 0)
    return encoded[:keep].decode(errors="ignore") + TRUNCATED

"""JSON rendering that never fails on a stored row."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer


class _EscapedJSONRenderer(JSONRenderer):
    ensure_ascii = True


class SafeJSONRenderer(JSONRenderer):
    """UTF-8 JSON; text that UTF-8 cannot carry (a lone surrogate in an old row) is sent \\u-escaped instead."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _EscapedJSONRenderer().render(data, accepted_media_type, renderer_context)

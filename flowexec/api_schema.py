"""OpenAPI error responses shared by every app's API views."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": True,
    "description": '{"detail": ...}, a list of "problems", or messages per field',
}

ERRORS = {
    code: OpenApiResponse(ERROR, description)
    for code, description in [
        (400, "invalid request"),
        (401, "not authenticated"),
        (403, "not allowed"),
        (404, "not found"),
        (413, "body too large"),
        (415, "unsupported media type"),
        (429, "throttled"),
    ]
}

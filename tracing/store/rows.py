"""One row shape for every span source: the SDK's ReadableSpan and OTLP's protobuf Span."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAME_MAX_LENGTH = 255
UNKNOWN_SERVICE = "unknown_service"


class SpanRow(TypedDict):
    """Keyword arguments of tracing.models.Span, built without touching Django."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    service_name: str
    start_time: datetime
    end_time: datetime
    duration_ns: int
    status: str
    status_message: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    resource: dict[str, Any]
    sender_id: NotRequired[int | None]  # the user who sent it to the OTLP receiver


def text(value: str) -> str:
    """PostgreSQL refuses NUL characters in text and jsonb: replace them rather than lose the batch."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def json_value(value: Any) -> Any:
    """Make an attribute value JSON-safe: sequences become lists, bytes base64, non-finite floats strings."""
    kind = type(value)
    # Exact types first: nearly every attribute is a plain str, int or bool, and this runs for each one.
    if kind is str:
        return value if "\x00" not in value else text(value)
    if kind is int or kind is bool or value is None:
        return value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {text(str(key)): json_value(item) for key, item in value.items()}
    if isinstance(value, Iterable):
        return [json_value(item) for item in value]
    return str(value)


def json_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes as a JSON object."""
    if not attributes:
        return {}
    return {
        (key if type(key) is str and "\x00" not in key else text(str(key))): json_value(value)
        for key, value in attributes.items()
    }


def event_entry(name: str, time_unix_nano: int, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """One span event as stored in Span.events."""
    return {"name": text(name), "time_unix_nano": time_unix_nano, "attributes": json_attributes(attributes)}


def datetime_from_ns(time_unix_nano: int) -> datetime:
    """UTC datetime (microsecond precision) from nanoseconds since the epoch."""
    return EPOCH + timedelta(microseconds=time_unix_nano // 1000)


def span_row(
    *,
    trace_id: str,
    span_id: str,
    parent_id: str,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    status: str,
    status_message: str,
    attributes: dict[str, Any],
    events: list[dict[str, Any]],
    resource: dict[str, Any],
) -> SpanRow:
    """Build the stored row; ids are lowercase hex, the service comes from the resource."""
    service_name = text(str(resource.get("service.name") or UNKNOWN_SERVICE))
    return SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=text(name)[:NAME_MAX_LENGTH],
        kind=kind,
        service_name=service_name[:NAME_MAX_LENGTH],
        start_time=datetime_from_ns(start_ns),
        end_time=datetime_from_ns(max(end_ns, start_ns)),
        duration_ns=max(end_ns - start_ns, 0),
        status=status,
        status_message=text(status_message),
        attributes=attributes,
        events=events,
        resource=resource,
    )

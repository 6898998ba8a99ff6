"""The admin's trace waterfall: bars placed on a common time axis, all geometry computed here.

Running work (open spans from the registered sources) is drawn up to now, open at the right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from tracing.models import Span
from tracing.store.rows import datetime_from_ns
from tracing.store.selectors import is_running, trace_get_live, walk_tree

TICKS = 5
INDENT_EM = 1.2
MAX_INDENT_DEPTH = 20
SERVICE_COLOURS = 6  # svc-0 .. svc-5 in tracing/waterfall.css
STATUS_CLASSES = {Span.Status.ERROR: "error", Span.Status.OK: "ok", Span.Status.UNSET: "unset"}


@dataclass(frozen=True)
class WaterfallEvent:
    """A span event: its offset from the trace start and its attributes."""

    name: str
    offset_ms: str
    attributes: list[tuple[str, str]]


@dataclass(frozen=True)
class WaterfallBar:
    """One span row; left/width are CSS percentages of the trace's duration, indent is in em."""

    span_id: str
    parent_id: str
    name: str
    kind: str
    service_name: str
    service_class: str
    status: str
    status_class: str
    status_message: str
    depth: int
    start_ms: str
    duration_ms: str
    left: str
    width: str
    indent: str
    attributes: list[tuple[str, str]]
    events: list[WaterfallEvent]
    running: bool


@dataclass(frozen=True)
class WaterfallTick:
    """A label on the time axis at a CSS percentage."""

    label: str
    left: str


@dataclass(frozen=True)
class Waterfall:
    """Every stored span of a trace, depth-first, ready to render without template logic."""

    trace_id: str
    start_time: datetime
    duration_ms: str
    span_count: int
    services: list[str]
    bars: list[WaterfallBar]
    ticks: list[WaterfallTick]
    running: bool  # some bar is still running: the trace's end is now


def trace_waterfall(trace_id: str) -> Waterfall | None:
    """The waterfall of a trace with its running work, or None when there is nothing to draw."""
    trace = trace_get_live(trace_id.lower())
    if trace is None:
        return None
    total_us = max(_microseconds(trace.end_time - trace.start_time), 1)
    service_classes = {name: f"svc-{index % SERVICE_COLOURS}" for index, name in enumerate(trace.services)}
    bars = [
        _bar(node.span, node.depth, trace.start_time, total_us, service_classes[node.span.service_name])
        for node in walk_tree(trace.roots)
    ]
    return Waterfall(
        trace_id=trace.trace_id,
        start_time=trace.start_time,
        duration_ms=_ms(total_us / 1000),
        span_count=trace.span_count,
        services=trace.services,
        bars=bars,
        ticks=[
            WaterfallTick(label=f"{_ms(total_us * step / TICKS / 1000)} ms", left=_pct(100 * step / TICKS))
            for step in range(TICKS + 1)
        ],
        running=trace.running,
    )


def _bar(span: Span, depth: int, trace_start: datetime, total_us: int, service_class: str) -> WaterfallBar:
    offset_us = _microseconds(span.start_time - trace_start)
    left = min(100 * offset_us / total_us, 100.0)
    width = min(100 * span.duration_ns / 1000 / total_us, 100.0 - left)
    return WaterfallBar(
        span_id=span.span_id,
        parent_id=span.parent_id,
        name=span.name,
        kind=span.kind,
        service_name=span.service_name,
        service_class=service_class,
        status=span.status,
        status_class=STATUS_CLASSES.get(span.status, "unset"),
        status_message=span.status_message,
        depth=depth,
        start_ms=_ms(offset_us / 1000),
        duration_ms=_ms(span.duration_ms),
        left=_pct(left),
        width=_pct(width),
        indent=f"{min(depth, MAX_INDENT_DEPTH) * INDENT_EM:.1f}",
        attributes=_pairs(span.attributes),
        events=[
            WaterfallEvent(
                name=str(event.get("name", "")),
                offset_ms=_ms(_microseconds(_event_time(event) - trace_start) / 1000),
                attributes=_pairs(event.get("attributes") or {}),
            )
            for event in span.events
        ],
        running=is_running(span),
    )


def format_timestamp(value: datetime | None) -> str:
    """A time in the current time zone, to the millisecond (the admin's one format); "-" when unset."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _event_time(event: dict) -> datetime:
    return datetime_from_ns(int(event.get("time_unix_nano") or 0))


def _pairs(attributes: dict) -> list[tuple[str, str]]:
    return [(key, value if isinstance(value, str) else json.dumps(value)) for key, value in sorted(attributes.items())]


def _microseconds(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def _pct(value: float) -> str:
    # Formatted here, not by the template: localisation could turn 12.5 into "12,5", invalid CSS.
    return f"{value:.4f}"


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"

"""Reads of the span store: one trace as a tree, trace search, trace summaries."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Min, QuerySet

from tracing.models import Span

TRACE_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class SpanNode:
    """A span with its depth in the trace and its children, earliest first."""

    span: Span
    depth: int = 0
    children: list[SpanNode] = field(default_factory=list)


@dataclass(frozen=True)
class Trace:
    """Every stored span of one trace, as a forest (a span whose parent is not stored is a root)."""

    trace_id: str
    roots: list[SpanNode]
    span_count: int
    services: list[str]
    start_time: datetime
    end_time: datetime

    @property
    def duration_ms(self) -> float:
        """From the earliest start to the latest end, in milliseconds."""
        return _ms(self.end_time - self.start_time)


@dataclass(frozen=True)
class TraceSummary:
    """One search hit: a trace described by its root span and totals."""

    trace_id: str
    root_name: str
    root_service: str
    start_time: datetime
    duration_ms: float
    span_count: int
    error_count: int
    services: list[str]


def is_trace_id(value: str) -> bool:
    """True for 32 lowercase hex digits."""
    return TRACE_ID.fullmatch(value) is not None


def trace_get(trace_id: str) -> Trace | None:
    """The stored spans of one trace as a tree, or None when none are stored."""
    spans = list(Span.objects.filter(trace_id=trace_id).order_by("start_time", "span_id"))
    if not spans:
        return None
    return Trace(
        trace_id=trace_id,
        roots=span_tree(spans),
        span_count=len(spans),
        services=_services(spans),
        start_time=min(span.start_time for span in spans),
        end_time=max(span.end_time for span in spans),
    )


def span_tree(spans: Sequence[Span]) -> list[SpanNode]:
    """Link spans (sorted by start) to their parents; orphans and spans in a parent cycle become roots."""
    nodes = {span.span_id: SpanNode(span) for span in spans}
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = nodes.get(node.span.parent_id)
        (parent.children if parent is not None and parent is not node else roots).append(node)
    reached = {id(node) for node in walk_tree(roots)}
    for node in nodes.values():
        if id(node) not in reached:
            # Only a parent cycle leaves a stored parent's child unreached: cut it there.
            nodes[node.span.parent_id].children.remove(node)
            roots.append(node)
            reached.update(id(descendant) for descendant in walk_tree([node]))
    for node in walk_tree(roots):
        for child in node.children:
            child.depth = node.depth + 1
    return roots


def walk_tree(roots: Sequence[SpanNode]) -> Iterator[SpanNode]:
    """Depth-first, parents before children, siblings in start order."""
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def trace_search(*, service: str = "", name: str = "", min_duration_ns: int = 0) -> QuerySet[Span, dict]:
    """Ids of traces holding a span that matches every given filter, most recent first."""
    spans = Span.objects.all()
    if service:
        spans = spans.filter(service_name=service)
    if name:
        spans = spans.filter(name__icontains=name)
    if min_duration_ns:
        spans = spans.filter(duration_ns__gte=min_duration_ns)
    return spans.values("trace_id").annotate(started=Min("start_time")).order_by("-started", "trace_id")


def trace_summaries(trace_ids: Sequence[str]) -> list[TraceSummary]:
    """Summaries of the given traces, in the given order, in one query."""
    by_trace: dict[str, list[Span]] = {trace_id: [] for trace_id in trace_ids}
    columns = ("trace_id", "span_id", "parent_id", "name", "service_name", "start_time", "end_time", "status")
    for span in Span.objects.filter(trace_id__in=trace_ids).only(*columns).order_by("start_time"):
        by_trace[span.trace_id].append(span)
    return [_summary(trace_id, spans) for trace_id, spans in by_trace.items() if spans]


def _summary(trace_id: str, spans: list[Span]) -> TraceSummary:
    ids = {span.span_id for span in spans}
    root = next((span for span in spans if span.parent_id not in ids), spans[0])
    start = spans[0].start_time
    end = max(span.end_time for span in spans)
    return TraceSummary(
        trace_id=trace_id,
        root_name=root.name,
        root_service=root.service_name,
        start_time=start,
        duration_ms=_ms(end - start),
        span_count=len(spans),
        error_count=sum(span.status == Span.Status.ERROR for span in spans),
        services=_services(spans),
    )


def _ms(delta: timedelta) -> float:
    # Whole microseconds: the stored datetimes hold no more, and float noise would show in JSON.
    return delta / timedelta(microseconds=1) / 1000


def _services(spans: Sequence[Span]) -> list[str]:
    return sorted({span.service_name for span in spans})

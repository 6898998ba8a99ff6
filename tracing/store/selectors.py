"""Reads of the span store: one trace as a tree (with work still running), trace search, trace summaries."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from tracing import attributes
from tracing.models import Span

TRACE_ID = re.compile(r"[0-9a-f]{32}")
RUNNING = attributes.SPAN_RUNNING
# Trace search reads matching spans newest first in batches of this many rows.
SEARCH_BATCH = 500
# Trace search counts distinct traces exactly up to this many, so a page's cost stays bounded.
SEARCH_COUNT_LIMIT = 1000


@dataclass(frozen=True)
class OpenSpan:
    """Work the store has no span of yet (it is still running, or its span is not exported yet), as plain data."""

    span_id: str
    parent_id: str
    name: str
    start_time: datetime
    end_time: datetime | None = None  # None while it runs: drawn up to now, marked running
    service_name: str = ""  # empty: the parent's
    status: str = Span.Status.UNSET
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


OpenSpanSource = Callable[[str], Iterable[OpenSpan]]
_open_span_sources: list[OpenSpanSource] = []


def open_span_source_register(source: OpenSpanSource) -> None:
    """Add a function giving a trace's open spans (the executions app registers its running steps)."""
    if source not in _open_span_sources:
        _open_span_sources.append(source)


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
    running: bool = False  # some span is still running: end_time is now

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


def is_running(span: Span) -> bool:
    """True for a span drawn from work still running."""
    return span.attributes.get(RUNNING) is True


def trace_get(trace_id: str, *, open_spans: Iterable[OpenSpan] = ()) -> Trace | None:
    """The stored spans of one trace and the given open ones (a stored span wins) as a tree, or None."""
    stored = list(Span.objects.filter(trace_id=trace_id).order_by("start_time", "span_id"))
    seen = {span.span_id for span in stored}
    now = timezone.now()
    drawn = []
    for open_span in open_spans:
        if open_span.span_id not in seen:
            seen.add(open_span.span_id)
            drawn.append(_span_from_open(trace_id, open_span, now))
    spans = sorted([*stored, *drawn], key=lambda span: (span.start_time, span.span_id))
    if not spans:
        return None
    roots = span_tree(spans)
    _inherit_services(roots)
    return Trace(
        trace_id=trace_id,
        roots=roots,
        span_count=len(spans),
        services=_services(spans),
        start_time=min(span.start_time for span in spans),
        end_time=max(span.end_time for span in spans),
        running=any(is_running(span) for span in drawn),
    )


def trace_get_live(trace_id: str) -> Trace | None:
    """One trace as `trace_get` gives it, merged with the open spans of every registered source."""
    return trace_get(trace_id, open_spans=[span for source in _open_span_sources for span in source(trace_id)])


def _span_from_open(trace_id: str, open_span: OpenSpan, now: datetime) -> Span:
    end = open_span.end_time or max(now, open_span.start_time)
    attributes = dict(open_span.attributes)
    if open_span.end_time is None:
        attributes[RUNNING] = True
    return Span(
        trace_id=trace_id,
        span_id=open_span.span_id,
        parent_id=open_span.parent_id,
        name=open_span.name,
        kind=Span.Kind.INTERNAL,
        service_name=open_span.service_name,
        start_time=open_span.start_time,
        end_time=end,
        duration_ns=(end - open_span.start_time) // timedelta(microseconds=1) * 1000,
        status=open_span.status,
        status_message=open_span.status_message,
        attributes=attributes,
        events=[],
        resource={"service.name": open_span.service_name} if open_span.service_name else {},
    )


def _inherit_services(roots: Sequence[SpanNode]) -> None:
    """An open span without a service runs in its parent's."""
    for node in walk_tree(roots):
        for child in node.children:
            if not child.span.service_name:
                child.span.service_name = node.span.service_name


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


class TraceSearch:
    """Traces holding a matching span, newest matching span first, as a sliceable sequence for a paginator.

    A page reads matching spans newest first (the start-time indexes serve it) until it has its
    traces, and the count stops at SEARCH_COUNT_LIMIT: neither grows with the table.
    """

    def __init__(self, spans: QuerySet[Span]) -> None:
        self.spans = spans

    def count(self) -> int:
        """Distinct matching traces, exact up to SEARCH_COUNT_LIMIT (then SEARCH_COUNT_LIMIT + 1)."""
        return self.spans.order_by().values("trace_id").distinct()[: SEARCH_COUNT_LIMIT + 1].count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[dict[str, str]]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("TraceSearch supports plain slices only")
        start, stop = index.start or 0, index.stop
        trace_ids: dict[str, None] = {}
        newest_first = self.spans.order_by("-start_time", "-id").values_list("trace_id", flat=True)
        offset = 0
        while stop is None or len(trace_ids) < stop:
            batch = list(newest_first[offset : offset + SEARCH_BATCH])
            trace_ids.update(dict.fromkeys(batch))
            if len(batch) < SEARCH_BATCH:
                break
            offset += SEARCH_BATCH
        return [{"trace_id": trace_id} for trace_id in list(trace_ids)[start:stop]]


def trace_search(
    *, service: str = "", name: str = "", min_duration_ns: int = 0, within: QuerySet | None = None
) -> TraceSearch:
    """Ids of traces holding a span that matches every given filter, the most recently active first.

    `within` (a trace-id subquery) restricts the search to the traces a caller may see.
    """
    spans = Span.objects.all() if within is None else Span.objects.filter(trace_id__in=within)
    if service:
        spans = spans.filter(service_name=service)
    if name:
        spans = spans.filter(name__icontains=name)
    if min_duration_ns:
        spans = spans.filter(duration_ns__gte=min_duration_ns)
    return TraceSearch(spans)


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


# Span admin reads: bounded whatever the table holds.
HEX = re.compile(r"[0-9a-f]{1,32}")
NEXT_HEX = dict(zip("0123456789abcdef", "123456789abcdefg", strict=True))
# The service filter offers the services of this many newest spans (a DISTINCT over the table would grow with it).
RECENT_SPANS_FOR_SERVICES = 2000


def hex_prefix_range(prefix: str) -> tuple[str, str] | None:
    """(low, high) with low <= x < high exactly for the hex strings x starting with `prefix`; None if not hex.

    A range, unlike a prefix LIKE, is served by a plain index on PostgreSQL too (any collation sorts
    digits before lowercase letters).
    """
    prefix = prefix.lower()
    if not HEX.fullmatch(prefix):
        return None
    return prefix, prefix[:-1] + NEXT_HEX[prefix[-1]]


def span_search(spans: QuerySet[Span], term: str) -> QuerySet[Span]:
    """Spans whose trace id starts with `term` (an index range scan), whose span id is `term`, or named like it."""
    term = term.strip()
    if not term:
        return spans
    condition = Q(name__icontains=term)
    if bounds := hex_prefix_range(term):
        condition |= Q(trace_id__gte=bounds[0], trace_id__lt=bounds[1])
        if len(term) == 16:
            condition |= Q(span_id=term.lower())
    return spans.filter(condition)


def recent_services() -> list[str]:
    """Service names among the newest spans, for the admin's filter."""
    newest = Span.objects.order_by("-start_time").values_list("service_name", flat=True)[:RECENT_SPANS_FOR_SERVICES]
    return sorted(set(newest))

"""Span retention bounds age, rows and bytes, counted from arrival: forged future spans cannot evict real ones."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from tracing.models import Span
from tracing.store import retention
from tracing.store.rows import span_row
from tracing.store.writer import write_rows

pytestmark = pytest.mark.django_db

SECOND_NS = 1_000_000_000


def rows(prefix: str, count: int, *, start: Any, attributes: dict[str, Any] | None = None) -> list[Any]:
    start_ns = int(start.timestamp() * SECOND_NS)
    return [
        span_row(
            trace_id=prefix * 32, span_id=f"{n + 1:016x}", parent_id="", name=f"{prefix} {n}", kind="INTERNAL",
            start_ns=start_ns, end_ns=start_ns + 1000, status="UNSET", status_message="",
            attributes=attributes or {}, events=[], resource={"service.name": "test"},
        )
        for n in range(count)
    ]  # fmt: skip


def test_forged_future_spans_do_not_evict_real_ones() -> None:
    now = timezone.now()
    write_rows(rows("f", 5, start=now + timedelta(days=365 * 300)))  # forged earlier, stamped centuries ahead
    write_rows(rows("a", 20, start=now - timedelta(minutes=1)))  # real traffic received since
    out = StringIO()
    call_command("prunespans", "--max-rows", "20", "--days", "0", "--max-bytes", "0", stdout=out)
    assert out.getvalue().strip() == "Deleted 5 spans."
    assert set(Span.objects.values_list("trace_id", flat=True)) == {"a" * 32}


def test_ages_count_from_arrival_not_from_the_span_start() -> None:
    now = timezone.now()
    write_rows(rows("f", 3, start=now + timedelta(days=3650)))
    write_rows(rows("a", 2, start=now - timedelta(days=30)))  # an old span arriving late is still kept
    Span.objects.filter(trace_id="f" * 32).update(received_at=now - timedelta(days=8))
    assert retention.prune_spans(max_age_days=7, max_rows=None, now=now) == 3
    assert set(Span.objects.values_list("trace_id", flat=True)) == {"a" * 32}


def test_retention_bounds_the_bytes_kept_newest_first(settings: Any) -> None:
    now = timezone.now()
    write_rows(rows("a", 10, start=now, attributes={"blob": "x" * 10_000}))
    write_rows(rows("b", 10, start=now, attributes={"small": 1}))
    sizes = dict(Span.objects.values_list("span_id", "size_bytes").filter(trace_id="b" * 32))
    assert all(200 < size < 1000 for size in sizes.values())
    assert all(size > 10_000 for size in Span.objects.filter(trace_id="a" * 32).values_list("size_bytes", flat=True))
    settings.FLOWEXEC_SPAN_RETENTION_MAX_BYTES = 35_000
    settings.FLOWEXEC_SPAN_RETENTION_MAX_ROWS = 0
    deleted = retention.prune_spans_from_settings()
    kept = list(Span.objects.values_list("trace_id", "size_bytes"))
    assert sum(size for _, size in kept) <= 35_000
    assert sum(1 for trace_id, _ in kept if trace_id == "b" * 32) == 10  # the newest are kept whole
    assert deleted == 20 - len(kept) and 10 < len(kept) < 20

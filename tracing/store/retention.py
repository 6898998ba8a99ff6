"""Bounded retention by age, rows and bytes, all counted from when the store received each span."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from django.db.models import F, Q, Sum, Window
from django.utils import timezone

from tracing import conf
from tracing.models import Span

# Writers prune at most this often per process; `manage.py prunespans` prunes on demand.
PRUNE_INTERVAL_SECONDS = 600.0

_prune_lock = threading.Lock()
_next_prune_at = 0.0

# Newest first by arrival: a span's own start_time is whatever its sender wrote, so it never decides.
NEWEST_FIRST = (F("received_at").desc(), F("id").desc())


def prune_spans(
    *,
    max_age_days: float | None,
    max_rows: int | None,
    max_bytes: int | None = None,
    now: datetime | None = None,
) -> int:
    """Delete spans received over max_age_days ago, then beyond the newest max_rows and max_bytes; 0/None: no limit."""
    deleted = 0
    if max_age_days:
        cutoff = (now or timezone.now()) - timedelta(days=max_age_days)
        deleted += Span.objects.filter(received_at__lt=cutoff).delete()[0]
    if max_rows:
        # Walks the (received_at, id) index down to the boundary row, instead of counting the table.
        boundary = Span.objects.order_by(*NEWEST_FIRST).values("received_at", "id")[max_rows : max_rows + 1]
        deleted += _delete_from(next(iter(boundary), None))
    if max_bytes:
        running = Window(Sum("size_bytes"), order_by=NEWEST_FIRST)
        over = Span.objects.annotate(kept=running).filter(kept__gt=max_bytes).order_by(*NEWEST_FIRST)
        deleted += _delete_from(over.values("received_at", "id").first())
    return deleted


def _delete_from(boundary: dict | None) -> int:
    """Delete the boundary row and every row received before it."""
    if boundary is None:
        return 0
    older = Q(received_at__lt=boundary["received_at"]) | Q(received_at=boundary["received_at"], id__lte=boundary["id"])
    return Span.objects.filter(older).delete()[0]


def prune_spans_from_settings() -> int:
    """Apply FLOWEXEC_SPAN_RETENTION_DAYS, FLOWEXEC_SPAN_RETENTION_MAX_ROWS and FLOWEXEC_SPAN_RETENTION_MAX_BYTES."""
    return prune_spans(
        max_age_days=conf.get("FLOWEXEC_SPAN_RETENTION_DAYS"),
        max_rows=conf.get("FLOWEXEC_SPAN_RETENTION_MAX_ROWS"),
        max_bytes=conf.get("FLOWEXEC_SPAN_RETENTION_MAX_BYTES"),
    )


def maybe_prune() -> int:
    """Prune from the settings if this process has not done so for PRUNE_INTERVAL_SECONDS."""
    global _next_prune_at
    with _prune_lock:
        if time.monotonic() < _next_prune_at:
            return 0
        _next_prune_at = time.monotonic() + PRUNE_INTERVAL_SECONDS
    return prune_spans_from_settings()

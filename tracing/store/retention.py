"""Bounded retention: drop spans older than the age limit and beyond the row limit."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from django.utils import timezone

from tracing import conf
from tracing.models import Span

# Writers prune at most this often per process; `manage.py prunespans` prunes on demand.
PRUNE_INTERVAL_SECONDS = 600.0

_prune_lock = threading.Lock()
_next_prune_at = 0.0


def prune_spans(*, max_age_days: float | None, max_rows: int | None, now: datetime | None = None) -> int:
    """Delete spans started over max_age_days ago, then all but the newest max_rows; 0/None: no limit."""
    deleted = 0
    if max_age_days:
        cutoff = (now or timezone.now()) - timedelta(days=max_age_days)
        deleted += Span.objects.filter(start_time__lt=cutoff).delete()[0]
    if max_rows:
        # Walks the start_time index down to the boundary row, instead of counting the table.
        newest_first = Span.objects.order_by("-start_time").values_list("start_time", flat=True)
        boundary = list(newest_first[max_rows : max_rows + 1])
        if boundary:
            deleted += Span.objects.filter(start_time__lte=boundary[0]).delete()[0]
    return deleted


def prune_spans_from_settings() -> int:
    """Apply FLOWEXEC_SPAN_RETENTION_DAYS and FLOWEXEC_SPAN_RETENTION_MAX_ROWS."""
    return prune_spans(
        max_age_days=conf.get("FLOWEXEC_SPAN_RETENTION_DAYS"),
        max_rows=conf.get("FLOWEXEC_SPAN_RETENTION_MAX_ROWS"),
    )


def maybe_prune() -> int:
    """Prune from the settings if this process has not done so for PRUNE_INTERVAL_SECONDS."""
    global _next_prune_at
    with _prune_lock:
        if time.monotonic() < _next_prune_at:
            return 0
        _next_prune_at = time.monotonic() + PRUNE_INTERVAL_SECONDS
    return prune_spans_from_settings()

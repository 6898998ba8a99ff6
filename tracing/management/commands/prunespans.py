"""manage.py prunespans: apply the span retention limits now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tracing import conf
from tracing.store.retention import prune_spans


class Command(BaseCommand):
    help = "Delete stored spans received before the retention age, and beyond the row and byte limits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, help="maximum age (default FLOWEXEC_SPAN_RETENTION_DAYS)")
        parser.add_argument("--max-rows", type=int, help="rows kept (default FLOWEXEC_SPAN_RETENTION_MAX_ROWS)")
        parser.add_argument("--max-bytes", type=int, help="bytes kept (default FLOWEXEC_SPAN_RETENTION_MAX_BYTES)")

    def handle(
        self, *args: Any, days: float | None, max_rows: int | None, max_bytes: int | None, **options: Any
    ) -> None:
        deleted = prune_spans(
            max_age_days=conf.get("FLOWEXEC_SPAN_RETENTION_DAYS") if days is None else days,
            max_rows=conf.get("FLOWEXEC_SPAN_RETENTION_MAX_ROWS") if max_rows is None else max_rows,
            max_bytes=conf.get("FLOWEXEC_SPAN_RETENTION_MAX_BYTES") if max_bytes is None else max_bytes,
        )
        self.stdout.write(f"Deleted {deleted} spans.")

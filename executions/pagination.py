"""Cursor pages for the executions list: a page read never counts or scans the whole table."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class ExecutionCursorPagination(CursorPagination):
    """Newest first, `next`/`previous` cursor URLs and `results`; `page_size` up to 200 per page."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        """DRF's cursor page; a hand-made cursor with a position that is not a timestamp is a 404 too."""
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValidationError, ValueError, OverflowError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc

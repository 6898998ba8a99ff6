"""Admin changelist paging whose cost does not grow with the table (the span and execution lists)."""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model

# Rows counted exactly; past this the count is bounded or estimated instead of a COUNT(*) of the table.
EXACT_COUNT_LIMIT = 1000


class EstimatedCountPaginator(Paginator):
    """Count exactly up to EXACT_COUNT_LIMIT rows; past that, an unfiltered list takes the table's estimated size.

    `estimated` tells the template to say "about N" (unfiltered) or "more than N" (filtered).
    """

    estimated = False
    filtered = False

    @cached_property
    def count(self) -> int:
        """The number of rows, exact up to EXACT_COUNT_LIMIT."""
        queryset = self.object_list
        exact = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
        if exact <= EXACT_COUNT_LIMIT:
            return exact
        self.estimated = True
        self.filtered = queryset.query.has_filters()
        if self.filtered:
            return EXACT_COUNT_LIMIT
        return max(table_estimate(queryset.model, queryset.db), exact)


def table_estimate(model: type[Model], using: str = "default") -> int:
    """The database's own idea of a table's row count, read in constant time (0 when it has none)."""
    connection = connections[using]
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        elif connection.vendor == "sqlite":
            # The largest rowid: the rows ever inserted, which deletes leave behind; an index lookup.
            cursor.execute(f"SELECT MAX(rowid) FROM {connection.ops.quote_name(table)}")
        else:
            return 0
        row = cursor.fetchone()
    return max(int(row[0] or 0), 0) if row else 0

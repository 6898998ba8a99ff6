"""Admin changelists count at most a bounded number of rows, then show an estimate."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from executions.models import Execution
from tracing import paging
from tracing.paging import EstimatedCountPaginator, table_estimate

pytestmark = pytest.mark.django_db


@pytest.fixture
def four_executions() -> list[Execution]:
    return [
        Execution.objects.create(flow_name="a" if index % 2 else "b", flow_version=1, status="succeeded")
        for index in range(4)
    ]


def test_counts_exactly_up_to_the_limit(four_executions: list[Execution]) -> None:
    paginator = EstimatedCountPaginator(Execution.objects.order_by("-created_at"), 2)
    assert paginator.count == 4 and not paginator.estimated and paginator.num_pages == 2


def test_past_the_limit_an_unfiltered_list_takes_the_table_estimate(
    four_executions: list[Execution], monkeypatch: Any
) -> None:
    monkeypatch.setattr(paging, "EXACT_COUNT_LIMIT", 2)
    paginator = EstimatedCountPaginator(Execution.objects.order_by("-created_at"), 2)
    assert paginator.count >= 3 and paginator.estimated and not paginator.filtered
    assert table_estimate(Execution) >= 0
    filtered = EstimatedCountPaginator(Execution.objects.exclude(flow_name="c").order_by("-created_at"), 1)
    assert filtered.count == 2 and filtered.estimated and filtered.filtered


def test_the_changelist_says_about_or_more_than(user: Any, four_executions: list[Execution], monkeypatch: Any) -> None:
    monkeypatch.setattr(paging, "EXACT_COUNT_LIMIT", 2)
    client = Client()
    client.force_login(user)
    assert "about " in client.get("/admin/executions/execution/").content.decode()
    filtered = client.get("/admin/executions/execution/", {"status__exact": "succeeded"}).content.decode()
    assert "more than 2 executions" in filtered

"""The admin dashboard: staff only, counts and percentiles from the database, bars linking to their executions."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.utils import timezone

from executions import stats, submission
from executions.models import Execution
from tests.tracing.test_metrics import FLOW_X

pytestmark = pytest.mark.django_db(transaction=True)


def run_known_set(make_flow: Any) -> list[Execution]:
    """3 succeeded and 1 failed execution of flow-x, plus one of another flow."""
    make_flow(**FLOW_X)
    make_flow(name="other", steps=[{"name": "hello", "type": "template", "template": "hi"}])
    executions = [
        submission.execution_submit(flow="flow-x", inputs={"text": t}, inline=True) for t in ("1", "[2]", '"3"', "no")
    ]
    submission.execution_submit(flow="other", inputs={}, inline=True)
    return executions


def test_stats_count_per_flow_with_error_rate_percentiles_and_slowest_steps(make_flow: Any) -> None:
    executions = run_known_set(make_flow)
    data = stats.dashboard(range_name="hour")
    flow_x = next(flow for flow in data.flows if flow.flow == "flow-x")
    assert (flow_x.total, flow_x.succeeded, flow_x.failed) == (4, 3, 1)
    assert flow_x.error_rate == 0.25
    durations = sorted(e.duration.total_seconds() for e in executions)
    assert flow_x.p50 == durations[1] and flow_x.p99 == durations[-1]
    assert sum(bucket.total for bucket in flow_x.buckets) == 4 and len(flow_x.buckets) == 60
    assert {(s.flow, s.step) for s in data.steps} == {("flow-x", "parse"), ("other", "hello")}
    assert next(s for s in data.steps if s.step == "parse").runs == 4


def test_stats_leave_out_executions_older_than_the_range(make_flow: Any) -> None:
    run_known_set(make_flow)
    Execution.objects.filter(flow_name="other").update(created_at=timezone.now() - timedelta(hours=2))
    assert {flow.flow for flow in stats.dashboard(range_name="hour").flows} == {"flow-x"}
    assert {flow.flow for flow in stats.dashboard(range_name="day").flows} == {"flow-x", "other"}


def test_dashboard_is_staff_only(client: Any, django_user_model: Any) -> None:
    assert client.get("/admin/dashboard/").status_code == 302
    django_user_model.objects.create_user("bob", password="pw-bob")
    client.login(username="bob", password="pw-bob")
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_dashboard_bars_link_to_the_matching_executions(client: Any, user: Any, make_flow: Any) -> None:
    run_known_set(make_flow)
    client.force_login(user)
    page = client.get("/admin/dashboard/?range=hour").content.decode()
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing from another host (no CDN)"
    section = page[page.index('data-flow="flow-x"'):page.index('data-flow="other"')]
    assert re.search(r'class="fd-total">4<', section) and re.search(r'class="fd-failed-count">1<', section)
    failed_links = [unescape(href) for href in re.findall(r'<a href="([^"]+)" class="fd-link-failed"', section)]
    assert len(failed_links) == 1
    listed = client.get(failed_links[0])
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 1
    assert listed.context["cl"].result_list[0].status == "failed"
    succeeded = [unescape(href) for href in re.findall(r'<a href="([^"]+)" class="fd-link-succeeded"', section)]
    assert sum(client.get(href).context["cl"].result_count for href in succeeded) == 3


def test_admin_index_links_to_the_dashboard(client: Any, user: Any) -> None:
    client.force_login(user)
    page = client.get("/admin/").content.decode()
    assert 'href="/admin/dashboard/"' in page
    assert "Flows and executions" in page, "the app list is still there"

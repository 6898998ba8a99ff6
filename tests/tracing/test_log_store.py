"""The embedded store keeps an execution's log lines (masked, bounded) and its admin page lists them by time."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry import trace

from executions import submission
from tracing.log_store import StoreLogHandler, log_lines
from tracing.models import LogLine
from tracing.redaction import masking

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def handler() -> Iterator[StoreLogHandler]:
    store = StoreLogHandler(start=False)
    root = logging.getLogger()
    root.addHandler(store)
    yield store
    root.removeHandler(store)


def test_lines_logged_during_an_execution_are_stored_with_its_trace_and_span(
    handler: StoreLogHandler, make_flow: Any, spans: Any
) -> None:
    make_flow(name="logged", steps=[{"name": "hello", "type": "template", "template": "hi"}])
    execution = submission.execution_submit(flow="logged", inputs={}, inline=True)
    logging.getLogger("outside").warning("no span here")
    handler.flush()
    lines = log_lines(execution.trace_id)
    mine = [line for line in lines if str(execution.pk) in line.message]
    assert mine and (mine[0].span_id, mine[0].level) == (execution.span_id, "INFO")
    assert not LogLine.objects.filter(message="no span here").exists()


def test_secret_values_are_masked_and_the_queue_is_bounded(handler: StoreLogHandler, spans: Any) -> None:
    bounded = StoreLogHandler(start=False, max_queue=3)
    with trace.get_tracer("test").start_as_current_span("work"), masking({"hunter2"}):
        logging.getLogger("test").info("password is hunter2")
        for number in range(5):
            bounded.emit(logging.LogRecord("test", logging.INFO, __file__, 1, f"line {number}", None, None))
    handler.flush()
    assert LogLine.objects.get(logger="test").message == "password is [REDACTED]"
    assert bounded.dropped == 2


def test_execution_page_lists_the_lines_in_time_order_linked_to_their_spans(
    client: Any, user: Any, make_flow: Any, spans: Any
) -> None:
    make_flow(name="logged", steps=[{"name": "hello", "type": "template", "template": "hi"}])
    execution = submission.execution_submit(flow="logged", inputs={}, inline=True)
    now = datetime.now(tz=UTC)
    for offset, text in ((2, "third"), (0, "first"), (1, "second")):
        LogLine.objects.create(
            trace_id=execution.trace_id, span_id=f"{offset:016d}", time=now + timedelta(seconds=offset),
            level="INFO", logger="test", message=text,
        )
    client.force_login(user)
    page = client.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
    section = page[page.index('id="execution-logs"'):]
    assert re.findall(r"<td style=\"white-space:pre-wrap\">(first|second|third)</td>", section) == [
        "first", "second", "third"
    ]
    assert f"/admin/tracing/span/?trace_id={execution.trace_id}&amp;span_id=0000000000000001" in section
    spans = client.get(f"/admin/tracing/span/?trace_id={execution.trace_id}&span_id={execution.span_id}")
    assert spans.status_code == 200

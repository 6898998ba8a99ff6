"""CurrentSpan: the engine's and the services' way to run a block under a span and end it."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from executions.engine.spans import CurrentSpan

tracer = trace.get_tracer("test")


def test_the_span_is_current_inside_the_block_then_ended_and_the_outer_one_is_current_again(spans):
    with tracer.start_as_current_span("outer") as outer:
        span = tracer.start_span("inner")
        with CurrentSpan(span) as entered:
            assert entered is span
            assert trace.get_current_span() is span
            assert not spans.all_named("inner")
        assert trace.get_current_span() is outer
    inner = spans.named("inner")
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert inner.status.status_code is StatusCode.UNSET


def test_an_escaping_exception_marks_the_span_failed_by_its_type_without_its_message(spans):
    with pytest.raises(ValueError, match="s3cr3t"), CurrentSpan(tracer.start_span("failing")):
        raise ValueError("password=s3cr3t")
    span = spans.named("failing")
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "ValueError")
    assert not span.events
    assert "s3cr3t" not in span.to_json()

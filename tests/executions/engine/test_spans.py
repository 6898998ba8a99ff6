"""CurrentSpan: the engine's and the services' way to run a block under a span and end it."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from executions.engine.spans import CurrentSpan


@pytest.fixture
def tracer_and_spans():
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider.get_tracer("test"), memory
    provider.shutdown()


def test_the_span_is_current_inside_the_block_then_ended_and_the_outer_one_is_current_again(tracer_and_spans):
    tracer, memory = tracer_and_spans
    with tracer.start_as_current_span("outer") as outer:
        span = tracer.start_span("inner")
        with CurrentSpan(span) as entered:
            assert entered is span
            assert trace.get_current_span() is span
            assert not memory.get_finished_spans()
        assert trace.get_current_span() is outer
    inner = memory.get_finished_spans()[0]
    assert inner.name == "inner"
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert inner.status.status_code is StatusCode.UNSET


def test_an_escaping_exception_marks_the_span_failed_by_its_type_without_its_message(tracer_and_spans):
    tracer, memory = tracer_and_spans
    with pytest.raises(ValueError, match="s3cr3t"), CurrentSpan(tracer.start_span("failing")):
        raise ValueError("password=s3cr3t")
    [span] = memory.get_finished_spans()
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "ValueError")
    assert not span.events
    assert "s3cr3t" not in repr(span.to_json())

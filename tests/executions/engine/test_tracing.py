"""Step spans: parentage across pool threads, one span per attempt, error status, recorded content."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from executions import engine
from tracing.attributes import (
    EVENT_CONTENT,
    FLOW_STEP_ATTEMPT,
    FLOW_STEP_NAME,
    FLOW_STEP_TYPE,
    STEP_INPUT_EVENT,
    STEP_OUTPUT_EVENT,
)

caller = trace.get_tracer("tests.engine")


def run_in_span(document: dict, config: engine.EngineConfig, hooks: Any = None) -> tuple[engine.RunResult, Any]:
    """Run a flow inside a caller span, as the service does; return the result and the caller's span."""
    definition = engine.parse(document, config=config)
    with caller.start_as_current_span("execute_flow test") as span:
        result = engine.run(definition, engine.bind_inputs(definition, {}), config=config, hooks=hooks)
    return result, span


def events(span: Any, name: str) -> list[dict]:
    """Decoded content of a span's events with this name."""
    return [json.loads(event.attributes[EVENT_CONTENT]) for event in span.events if event.name == name]


def test_step_spans_are_children_of_the_caller_span_in_pool_threads(spans):
    barrier = threading.Barrier(2, timeout=5)
    threads: set[str] = set()

    def meet(label: str) -> str:
        threads.add(threading.current_thread().name)
        barrier.wait()
        return label

    config = engine.EngineConfig(python_functions={"meet": meet})
    document = {
        "name": "t",
        "steps": [
            {"name": "left", "type": "python", "function": "meet", "args": {"label": "l"}},
            {"name": "right", "type": "python", "function": "meet", "args": {"label": "r"}},
        ],
    }
    result, parent = run_in_span(document, config)
    assert result.status == "succeeded", result.error
    assert len(threads) == 2
    assert threading.current_thread().name not in threads
    parent_context = parent.get_span_context()
    for outcome in result.steps:
        span = spans.named(f"step {outcome.name}")
        assert span.parent.span_id == parent_context.span_id
        assert span.context.trace_id == parent_context.trace_id
        assert dict(span.attributes) == {
            FLOW_STEP_NAME: outcome.name,
            FLOW_STEP_TYPE: "python",
            FLOW_STEP_ATTEMPT: 1,
        }
        assert outcome.span_id == format(span.context.span_id, "016x")


def test_each_attempt_is_its_own_span(spans):
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"failure {len(calls)}")
        return "ok"

    config = engine.EngineConfig(python_functions={"flaky": flaky})
    document = {
        "name": "t",
        "steps": [{"name": "flaky", "type": "python", "function": "flaky", "retries": 2}],
    }
    result, _ = run_in_span(document, config)
    attempts = spans.all_named("step flaky")
    assert [span.attributes[FLOW_STEP_ATTEMPT] for span in attempts] == [1, 2, 3]
    assert [span.status.status_code for span in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert len({span.context.span_id for span in attempts}) == 3
    assert result.steps[0].span_id == format(attempts[-1].context.span_id, "016x")


def test_failed_step_span_has_error_status_and_exception(spans):
    result, _ = run_in_span(
        {"name": "t", "steps": [{"name": "boom", "type": "fail", "message": "kaput"}]}, engine.EngineConfig()
    )
    span = spans.named("step boom")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == 'step "boom": kaput' == result.error
    exception = next(event for event in span.events if event.name == "exception")
    assert exception.attributes["exception.type"].endswith("StepError")


def test_content_events_are_redacted(spans):
    config = engine.EngineConfig(redact_keys=frozenset({"pin"}), record_content=True)
    args = {"value": {"user": "bob", "password": "hunter2", "nested": {"db_password": "x", "PIN": 1}}}
    document = {"name": "t", "steps": [{"name": "echo", "type": "python", "function": "echo", "args": args}]}
    result, _ = run_in_span(document, config)
    assert result.status == "succeeded"
    span = spans.named("step echo")
    redacted = {
        "user": "bob",
        "password": "[REDACTED]",
        "nested": {"db_password": "[REDACTED]", "PIN": "[REDACTED]"},
    }
    assert events(span, STEP_INPUT_EVENT) == [{"function": "echo", "args": {"value": redacted}}]
    assert events(span, STEP_OUTPUT_EVENT) == [redacted]
    assert "hunter2" not in str([event.attributes for event in span.events])
    assert result.steps[0].output["password"] == "hunter2"


def test_content_events_are_capped(spans):
    config = engine.EngineConfig(content_max_bytes=64)
    document = {"name": "t", "steps": [{"name": "t", "type": "template", "template": "x" * 500}]}
    run_in_span(document, config)
    for event in spans.named("step t").events:
        assert len(event.attributes[EVENT_CONTENT].encode()) <= 64


def test_no_content_events_when_recording_is_off(spans):
    config = engine.EngineConfig(record_content=False)
    document = {"name": "t", "steps": [{"name": "t", "type": "template", "template": "secret-ish"}]}
    result, _ = run_in_span(document, config)
    assert result.status == "succeeded"
    assert spans.named("step t").events == ()


def test_sub_flow_spans_nest_under_the_calling_step(spans):
    config = engine.EngineConfig()
    inner = engine.parse({"name": "inner", "steps": [{"name": "deep", "type": "template", "template": "x"}]})

    class Hooks(engine.NullHooks):
        def run_subflow(
            self, flow: str, inputs: Mapping[str, Any], depth: int, stop: threading.Event
        ) -> Mapping[str, Any]:
            result = engine.run(inner, inputs, config=config, hooks=self, depth=depth)
            if result.status != "succeeded":
                raise engine.FlowError(result.error)
            return result.outputs

    result, _ = run_in_span(
        {"name": "outer", "steps": [{"name": "call", "type": "flow", "flow": "inner"}]}, config, Hooks()
    )
    assert result.status == "succeeded", result.error
    assert spans.named("step deep").parent.span_id == spans.named("step call").context.span_id


@pytest.mark.parametrize("record_content", [True, False])
def test_timed_out_attempt_span_is_ended_with_error(spans, record_content):
    release = threading.Event()
    config = engine.EngineConfig(python_functions={"block": lambda: release.wait(5)}, record_content=record_content)
    document = {
        "name": "t",
        "steps": [{"name": "slow", "type": "python", "function": "block", "timeout": 0.1}],
    }
    try:
        run_in_span(document, config)
    finally:
        release.set()
    span = spans.named("step slow")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == 'step "slow": timed out after 0.1s'


def test_secret_values_never_reach_span_events_status_or_recorded_exceptions(spans):
    secret = "s3cr3t-Pa55"

    def explode(value: str) -> None:
        raise RuntimeError(f"upstream refused {value}")

    config = engine.EngineConfig(
        python_functions={**engine.builtin_functions(), "explode": explode}, record_content=True
    )
    document = {
        "name": "s",
        "inputs": {"password": {"type": "string"}},
        "steps": [
            {"name": "t", "type": "template", "template": "Hello ${inputs.password}"},
            {"name": "p", "type": "python", "function": "explode", "args": {"value": "${steps.t.output}"}},
        ],
    }
    definition = engine.parse(document, config=config)
    with caller.start_as_current_span("execute_flow test"):
        result = engine.run(definition, {"password": secret}, config=config)
    assert result.error == 'step "p": RuntimeError: upstream refused Hello [REDACTED]'
    recorded = [
        (span.name, span.status.description, [(event.name, dict(event.attributes)) for event in span.events])
        for span in spans.all()
    ]
    assert secret not in repr(recorded)
    failed = spans.named("step p")
    exception = next(event for event in failed.events if event.name == "exception")
    assert exception.attributes["exception.message"] == 'step "p": RuntimeError: upstream refused Hello [REDACTED]'
    assert "StepError" in exception.attributes["exception.stacktrace"]
    assert failed.status.description == result.error
    assert events(spans.named("step t"), STEP_OUTPUT_EVENT) == ["Hello [REDACTED]"]

"""Span names and attribute keys, each defined once (DESIGN.md, Tracing conventions)."""

from __future__ import annotations

TRACER_NAME = "flowexec"

EXECUTE_FLOW_SPAN = "execute_flow {flow}"
STEP_SPAN = "step {step}"
CLI_SPAN = "flowexec {command}"

FLOW_NAME = "flow.name"
FLOW_VERSION = "flow.version"
FLOW_EXECUTION_ID = "flow.execution.id"
FLOW_STEP_NAME = "flow.step.name"
FLOW_STEP_TYPE = "flow.step.type"
FLOW_STEP_ATTEMPT = "flow.step.attempt"
FLOW_CLIENT = "flow.client"
# On spans the trace API draws from work still running (never on a stored span).
SPAN_RUNNING = "flowexec.span.running"
# Metric attributes: the final status of an execution or step.
FLOW_EXECUTION_STATUS = "flow.execution.status"
FLOW_STEP_STATUS = "flow.step.status"

REQUEST_ID = "request_id"
USER_AGENT = "user_agent.original"
CLIENT = "client"

STEP_INPUT_EVENT = "flow.step.input"
STEP_OUTPUT_EVENT = "flow.step.output"
EVENT_CONTENT = "content"

REQUEST_ID_HEADER = "X-Request-ID"
# What a request id may be, for every client and the service alike (one rule, one home).
REQUEST_ID_PATTERN = r"[A-Za-z0-9._:@/+=-]{1,128}"

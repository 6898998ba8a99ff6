"""configure_tracing in fresh processes, checked on the wire: OTLP/HTTP, OTLP/gRPC, Jaeger UDP, console."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import flowexec
from tests.otlp_receiver import GrpcOtlpReceiver, JaegerUdpReceiver, OtlpReceiver, ReceivedSpan

REPO = Path(__file__).resolve().parents[2]

# Nested spans SERVER > INTERNAL > CLIENT, optionally under a remote traceparent, then a bounded flush.
SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s", stream=sys.stderr)
import os
from tracing.config import ProcessDefaults, tracing_config
from tracing.provider import configure_tracing, flush_and_shutdown
service, default_exporters, endpoint, headers, traceparent, flush_timeout = sys.argv[1:7]
defaults = ProcessDefaults(
    service, exporters=tuple(default_exporters.split(",")), otlp_endpoint=endpoint, otlp_headers=json.loads(headers)
)
state = configure_tracing(tracing_config(os.environ, defaults))
from opentelemetry import propagate, trace
tracer = trace.get_tracer("wire-test")
parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
root_attributes = {"flow.name": "demo"}
with tracer.start_as_current_span("root", parent, trace.SpanKind.SERVER, attributes=root_attributes):
    with tracer.start_as_current_span("child", attributes={"n": 1}) as child:
        child.add_event("evt", {"k": "v"})
        with tracer.start_as_current_span("grandchild", kind=trace.SpanKind.CLIENT):
            pass
flush_and_shutdown(float(flush_timeout))
"""


@dataclass
class Run:
    """A finished traced subprocess."""

    stdout: str
    stderr: str
    seconds: float

    def lines(self, level: str) -> list[str]:
        """stderr log lines at this level."""
        return [line for line in self.stderr.splitlines() if line.startswith(level)]


def run_traced(
    env: dict[str, str],
    *,
    service: str = "wire-default",
    default_exporters: str = "console",
    endpoint: str = "",
    headers: dict[str, str] | None = None,
    traceparent: str = "",
    flush_timeout: float = 5.0,
) -> Run:
    """Run SCRIPT in a fresh interpreter with only these OTEL_* variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_"))}
    clean.update(env, PYTHONPATH=str(REPO))
    args = [service, default_exporters, endpoint, json.dumps(headers or {}), traceparent, str(flush_timeout)]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], env=clean, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    run = Run(proc.stdout, proc.stderr, time.monotonic() - started)
    assert proc.returncode == 0, run.stderr
    return run


def assert_nested(spans: list[ReceivedSpan], service: str) -> dict[str, ReceivedSpan]:
    """The three spans form one trace root > child > grandchild, all from service."""
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == ["child", "grandchild", "root"]
    root, child, grandchild = by_name["root"], by_name["child"], by_name["grandchild"]
    assert len({span.trace_id for span in spans}) == 1
    assert root.parent_id == ""
    assert child.parent_id == root.span_id
    assert grandchild.parent_id == child.span_id
    assert (root.kind, child.kind, grandchild.kind) == ("SERVER", "INTERNAL", "CLIENT")
    assert {span.service_name for span in spans} == {service}
    return by_name


def closed_port() -> int:
    """A 127.0.0.1 TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_otlp_http_sends_nested_spans_honouring_service_name_and_resource_attributes():
    with OtlpReceiver() as receiver:
        run = run_traced(
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                # The generic endpoint: the exporter appends /v1/traces (the receiver only accepts that path).
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url,
                "OTEL_SERVICE_NAME": "wire-svc",
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,service.version=9.9",
            },
            service="ignored-default",
        )
        spans = receiver.wait_for(lambda s: len(s) >= 3)
    by_name = assert_nested(spans, "wire-svc")
    assert by_name["root"].attributes == {"flow.name": "demo"}
    assert by_name["child"].attributes == {"n": 1}
    assert by_name["child"].events == [("evt", {"k": "v"})]
    assert by_name["root"].resource["deployment.environment"] == "test"
    assert by_name["root"].resource["service.version"] == "9.9"
    [info] = [line for line in run.lines("INFO") if "flowexec.tracing" in line]
    assert f"service.name=wire-svc exporters=otlp(http/protobuf {receiver.endpoint})" in info
    assert "sampler=ParentBased{root:AlwaysOnSampler" in info
    assert info.endswith("propagators=tracecontext,baggage")


def test_otlp_endpoint_argument_and_headers_apply_only_without_env():
    with OtlpReceiver() as receiver:
        run_traced(
            {"OTEL_TRACES_EXPORTER": "otlp"},
            service="flowexec-cli",
            endpoint=receiver.endpoint,
            headers={"Authorization": "Token arg"},
        )
        receiver.wait_for(lambda s: len(s) >= 3)
        run_traced(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Token%20env"},
            service="flowexec-cli",
            endpoint=receiver.endpoint,
            headers={"Authorization": "Token arg"},
        )
        spans = receiver.wait_for(lambda s: len(s) >= 6)
    auth = [{k.lower(): v for k, v in headers.items()}["authorization"] for headers, _ in receiver.requests]
    assert auth == ["Token arg", "Token env"]
    assert {span.service_name for span in spans} == {"flowexec-cli"}
    assert {span.resource["service.version"] for span in spans} == {flowexec.__version__}


def test_otlp_grpc_sends_nested_spans():
    with GrpcOtlpReceiver() as receiver:
        run_traced(
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url,
            },
            service="grpc-svc",
        )
        spans = receiver.wait_for(lambda s: len(s) >= 3)
    by_name = assert_nested(spans, "grpc-svc")
    assert by_name["child"].events == [("evt", {"k": "v"})]


def test_jaeger_thrift_over_udp_decodes_with_operation_names_tags_and_service():
    with JaegerUdpReceiver() as receiver:
        run_traced(
            {
                "OTEL_TRACES_EXPORTER": "jaeger",
                "OTEL_EXPORTER_JAEGER_AGENT_HOST": "127.0.0.1",
                "OTEL_EXPORTER_JAEGER_AGENT_PORT": str(receiver.port),
            },
            service="jaeger-svc",
        )
        spans = receiver.wait_for(lambda s: len(s) >= 3)
    by_name = assert_nested(spans, "jaeger-svc")
    assert by_name["root"].attributes["flow.name"] == "demo"
    assert by_name["child"].attributes["n"] == 1
    assert by_name["grandchild"].attributes["span.kind"] == "client"


def test_console_prints_span_json_to_stderr_and_nothing_to_stdout():
    run = run_traced({"OTEL_TRACES_EXPORTER": "console"}, service="console-svc")
    assert run.stdout == ""
    decoder, text, spans = json.JSONDecoder(), run.stderr, []
    # stderr interleaves the log lines with the spans' JSON, each of which starts a line with "{".
    for position in [0, *(i + 1 for i, char in enumerate(text) if char == "\n")]:
        if text.startswith("{", position):
            spans.append(decoder.raw_decode(text, position)[0])
    by_name = {span["name"]: span for span in spans}
    assert sorted(by_name) == ["child", "grandchild", "root"]
    assert by_name["child"]["parent_id"] == by_name["root"]["context"]["span_id"]
    assert by_name["root"]["resource"]["attributes"]["service.name"] == "console-svc"


@pytest.mark.parametrize(
    ("env", "logged"),
    [
        ({"OTEL_TRACES_EXPORTER": "none"}, "exporters=none"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
            "tracing disabled (OTEL_SDK_DISABLED=true)",
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_TRACES_SAMPLER": "traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0",
            },
            "sampler=TraceIdRatioBased{0.0}",
        ),
    ],
    ids=["exporter-none", "sdk-disabled", "ratio-zero"],
)
def test_nothing_is_exported(env, logged):
    with OtlpReceiver() as receiver:
        run = run_traced({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url})
        # The process has exited after its flush, so anything it sent has already been received.
        assert receiver.requests == []
    assert logged in run.stderr


def test_parentbased_always_on_follows_the_remote_sampled_flag():
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_always_on"}
    with OtlpReceiver() as receiver:
        run_traced(
            {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url},
            traceparent=f"00-{trace_id}-{parent_id}-00",
        )
        assert receiver.requests == []
        run_traced(
            {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url},
            traceparent=f"00-{trace_id}-{parent_id}-01",
        )
        spans = receiver.wait_for(lambda s: len(s) >= 3)
    assert {span.trace_id for span in spans} == {trace_id}
    assert next(span for span in spans if span.name == "root").parent_id == parent_id


def test_dead_backend_finishes_quickly_with_at_most_one_warning():
    port = closed_port()
    run = run_traced(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces",
        },
        flush_timeout=1.0,
    )
    assert run.seconds < 4, run.stderr
    warnings = run.lines("WARNING") + run.lines("ERROR")
    assert len(warnings) <= 1, run.stderr
    assert "Traceback" not in run.stderr
    assert [line for line in run.stderr.splitlines() if "retrying" in line] == [
        line for line in warnings if "retrying" in line
    ]

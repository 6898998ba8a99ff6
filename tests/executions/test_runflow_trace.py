"""`manage.py runflow` as a real process: in-process and --remote runs each give one connected trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import ROOT, base_env, start_service
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow


def runflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), "runflow", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def by_name(spans: list[ReceivedSpan], trace_id: str) -> dict[str, ReceivedSpan]:
    return {span.name: span for span in spans if span.trace_id == trace_id}


def test_in_process_runflow_is_one_trace_rooted_in_the_command(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        service = start_service(tmp_path)  # only for its migrated database with the example flows
        service.stop()
        result = runflow("hello", "--input", "name=Ada", env=base_env(
            DATABASE_URL=service.database_url, OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
        ))
        assert result.returncode == 0, result.stderr
        assert '"shouted": "HELLO, ADA!"' in result.stdout
        trace_id = result.stdout.split("trace", 1)[1].split()[0]
        spans = receiver.wait_for(lambda spans: "step shout" in by_name(spans, trace_id), timeout=10)
    tree = by_name(spans, trace_id)
    root = tree["manage.py runflow"]
    assert root.parent_id == "" and root.service_name == "flowexec-manage"
    assert tree["execute_flow hello"].parent_id == root.span_id
    assert tree["execute_flow hello"].attributes["flow.client"] == "manage"
    assert tree["step shout"].parent_id == tree["execute_flow hello"].span_id
    assert root.attributes["client"] == "manage"  # baggage client=manage on every span


def test_runflow_continues_the_trace_named_in_traceparent(tmp_path: Path) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with OtlpReceiver() as receiver:
        service = start_service(tmp_path)  # only for its migrated database with the example flows
        service.stop()
        result = runflow("hello", env=base_env(
            DATABASE_URL=service.database_url, OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
            TRACEPARENT=f"00-{trace_id}-{parent_id}-01", BAGGAGE="ci.pipeline=main",
        ))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("trace", 1)[1].split()[0] == trace_id
        spans = receiver.wait_for(lambda spans: "step shout" in by_name(spans, trace_id), timeout=10)
    root = by_name(spans, trace_id)["manage.py runflow"]
    assert root.parent_id == parent_id
    assert root.attributes["client"] == "manage"


def test_remote_runflow_propagates_the_trace_to_the_service(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        exporting = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
                     "OTEL_BSP_SCHEDULE_DELAY": "50"}
        service = start_service(tmp_path, env=exporting)
        try:
            result = runflow("hello", "--remote", service.url, "--token", service.token, "--json",
                             "--input", "name=42", env=base_env(**exporting))
            assert result.returncode == 0, result.stderr
            body = json.loads(result.stdout)
            # The server span ends last in the service and may come in a later batch than its steps.
            spans = receiver.wait_for(lambda spans: "step shout" in by_name(spans, body["trace_id"])
                                      and "flowexec run" in by_name(spans, body["trace_id"])
                                      and any(s.kind == "SERVER" for s in by_name(spans, body["trace_id"]).values()),
                                      timeout=15)
        finally:
            service.stop()
    tree = by_name(spans, body["trace_id"])
    root = tree["flowexec run"]
    assert root.service_name == "flowexec-manage" and root.parent_id == ""
    client = next(s for s in tree.values() if s.kind == "CLIENT" and s.parent_id == root.span_id)
    server = next(s for s in tree.values() if s.kind == "SERVER")
    assert server.parent_id == client.span_id and server.service_name == "flowexec-service"
    assert server.attributes["user_agent.original"].startswith("flowexec-manage/")
    assert tree["execute_flow hello"].parent_id == server.span_id
    assert body["client"] == "manage"
    assert body["inputs"] == {"name": "42"}  # the same value in-process runflow and flowexec run send

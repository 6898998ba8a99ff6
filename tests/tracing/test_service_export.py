"""The real service exports its spans on the wire: OTLP/HTTP, OTLP/gRPC, Jaeger thrift, console, none."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveService, start_service, wait_until
from tests.otlp_receiver import GrpcOtlpReceiver, JaegerUdpReceiver, OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow

FAST_BATCHES = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


def otlp_to(endpoint: str, **extra: str) -> dict[str, str]:
    """Environment for a service exporting OTLP/HTTP to `endpoint`, in fast batches unless overridden."""
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, **FAST_BATCHES, **extra}


def run_hello(service: LiveService, **headers: str) -> dict[str, Any]:
    response = service.request(
        "POST",
        "/api/executions/",
        body=json.dumps({"flow": "hello", "inputs": {"name": "Ada"}}),
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status == 201, response.data
    return json.loads(response.data)


def assert_one_tree(spans: list[ReceivedSpan], trace_id: str) -> None:
    """server -> execute_flow -> steps, all in one trace, all from flowexec-service."""
    mine = {span.name: span for span in spans if span.trace_id == trace_id}
    server = next(span for span in mine.values() if span.kind == "SERVER")
    execute = mine["execute_flow hello"]
    assert execute.parent_id == server.span_id
    assert execute.attributes["flow.name"] == "hello"
    for step in ["step hello", "step shout"]:
        assert mine[step].parent_id == execute.span_id, step
    assert {span.service_name for span in mine.values()} == {"flowexec-service"}


def has_execution_tree(trace_id: str) -> Any:
    def check(spans: list[ReceivedSpan]) -> bool:
        names = {span.name for span in spans if span.trace_id == trace_id}
        return {"execute_flow hello", "step hello", "step shout"} <= names and any(
            span.kind == "SERVER" for span in spans if span.trace_id == trace_id
        )

    return check


def test_otlp_http_export_forms_one_tree(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        service = start_service(
            tmp_path,
            env=otlp_to(receiver.endpoint),
        )
        try:
            body = run_hello(service)
            spans = receiver.wait_for(has_execution_tree(body["trace_id"]), timeout=20)
        finally:
            service.stop()
    assert_one_tree(spans, body["trace_id"])
    assert "tracing enabled: service.name=flowexec-service" in service.log()


def test_otlp_grpc_export_forms_one_tree(tmp_path: Path) -> None:
    with GrpcOtlpReceiver() as receiver:
        service = start_service(
            tmp_path,
            env={
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://{receiver.endpoint}",
                **FAST_BATCHES,
            },
        )
        try:
            body = run_hello(service)
            spans = receiver.wait_for(has_execution_tree(body["trace_id"]), timeout=20)
        finally:
            service.stop()
    assert_one_tree(spans, body["trace_id"])


def test_jaeger_thrift_export_decodes_with_names_tags_and_service(tmp_path: Path) -> None:
    with JaegerUdpReceiver() as receiver:
        service = start_service(
            tmp_path,
            env={
                "OTEL_TRACES_EXPORTER": "jaeger",
                "OTEL_EXPORTER_JAEGER_AGENT_HOST": "127.0.0.1",
                "OTEL_EXPORTER_JAEGER_AGENT_PORT": str(receiver.port),
                **FAST_BATCHES,
            },
        )
        try:
            body = run_hello(service)
            spans = receiver.wait_for(has_execution_tree(body["trace_id"]), timeout=20)
        finally:
            service.stop()
    assert_one_tree(spans, body["trace_id"])
    execute = next(span for span in spans if span.name == "execute_flow hello")
    assert execute.attributes["flow.execution.id"] == body["id"]


def test_console_exporter_prints_spans(tmp_path: Path) -> None:
    service = start_service(tmp_path, env={"OTEL_TRACES_EXPORTER": "console"})
    try:
        body = run_hello(service)
        wait_until(lambda: '"name": "execute_flow hello"' in service.log(), timeout=20, message="console span")
    finally:
        service.stop()
    assert body["trace_id"] in service.log().replace("0x", "")


# Exports only at shutdown: gunicorn stops its workers gracefully and each flushes on exit, so an
# empty receiver after stop() means nothing was exported, not that nothing was exported yet.
FLUSH_AT_EXIT = {"OTEL_BSP_SCHEDULE_DELAY": "600000"}


def test_spans_queued_at_shutdown_are_flushed_on_exit(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        service = start_service(
            tmp_path,
            server="gunicorn",
            workers=1,
            env=otlp_to(receiver.endpoint, **FLUSH_AT_EXIT),
        )
        body = run_hello(service)
        assert receiver.requests == []
        service.stop()
        receiver.wait_for(has_execution_tree(body["trace_id"]), timeout=10)


@pytest.mark.parametrize(
    "env",
    [{"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}],
    ids=["exporter-none", "sdk-disabled"],
)
def test_no_export_and_the_service_still_works(tmp_path: Path, env: dict[str, str]) -> None:
    with OtlpReceiver() as receiver:
        service = start_service(
            tmp_path,
            server="gunicorn",
            workers=1,
            env={
                **env,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
                **FLUSH_AT_EXIT,
            },
        )
        try:
            body = run_hello(service)
            assert body["status"] == "succeeded"
        finally:
            service.stop()
        assert service.process.returncode == 0
        assert receiver.requests == []
    if "OTEL_SDK_DISABLED" in env:
        assert "tracing disabled (OTEL_SDK_DISABLED=true)" in service.log()


def test_gunicorn_exports_spans_from_both_workers(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        service = start_service(
            tmp_path,
            server="gunicorn",
            workers=2,
            env=otlp_to(receiver.endpoint),
        )

        def instances(spans: list[ReceivedSpan]) -> bool:
            return len({s.resource.get("service.instance.id") for s in spans if s.name == "execute_flow hello"}) >= 2

        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                # Concurrent requests spread over the sync workers; stop as soon as both have exported.
                for _ in range(10):
                    list(pool.map(lambda _: run_hello(service), range(8)))
                    if instances(receiver.spans()):
                        break
            spans = receiver.wait_for(instances, timeout=20)
        finally:
            service.stop()
    assert {s.service_name for s in spans} == {"flowexec-service"}


def test_database_spans_and_traced_log_lines(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        service = start_service(
            tmp_path,
            env=otlp_to(receiver.endpoint, FLOWEXEC_TRACE_DATABASE="1"),
        )
        try:
            body = run_hello(service)

            def execute_span_and_its_query(spans: list[ReceivedSpan]) -> bool:
                # Spans arrive in batches: a query span may come before the execute_flow span it belongs to.
                executes = [s for s in spans if s.name == "execute_flow hello" and s.trace_id == body["trace_id"]]
                return any(s.parent_id == e.span_id and "db.system" in s.attributes for e in executes for s in spans)

            spans = receiver.wait_for(execute_span_and_its_query, timeout=20)
        finally:
            service.stop()
    # The start-up stale sweep and the runner's heartbeat query outside any span: no one-span traces.
    assert not [s.name for s in spans if "db.system" in s.attributes and not s.parent_id]
    logged = [line for line in service.log().splitlines() if f"execution {body['id']} of hello" in line]
    assert len(logged) == 1
    assert f"trace_id={body['trace_id']} span_id={body['span_id']}" in logged[0]


@pytest.mark.parametrize("backend", ["refused", "hanging"])
def test_dead_trace_backend_warns_once_and_never_fails_a_request(tmp_path: Path, backend: str) -> None:
    from tests.live import free_port

    hanging = socket.socket()  # accepts connections (kernel backlog) and never answers
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)
    port = hanging.getsockname()[1] if backend == "hanging" else free_port()  # else nothing listens there
    dead = f"http://127.0.0.1:{port}/v1/traces"
    service = start_service(
        tmp_path,
        server="gunicorn",
        workers=1,
        env=otlp_to(dead),
    )
    try:
        bodies = [run_hello(service) for _ in range(3)]

        def failure_lines() -> list[str]:
            return [line for line in service.log().splitlines() if "trace export to" in line]

        wait_until(failure_lines, timeout=20, message="the export failure warning")
        bodies += [run_hello(service) for _ in range(3)]  # more batches fail after the warning...
    finally:
        service.stop()  # ...and the graceful exit flushes (and fails) once more
        hanging.close()
    assert service.process.returncode == 0  # the exit's flush is bounded even when the backend hangs
    assert all(body["status"] == "succeeded" for body in bodies)
    assert len(failure_lines()) == 1, failure_lines()  # ...and say nothing more
    assert "Traceback" not in service.log()


def test_header_capture_by_the_instrumentation_never_records_secrets(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        service = start_service(
            tmp_path, env=otlp_to(receiver.endpoint, OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=".*")
        )
        try:
            body = run_hello(service, **{"X-Api-Key": "key-secret-123", "X-Tenant": "acme"})
            spans = receiver.wait_for(has_execution_tree(body["trace_id"]), timeout=20)
        finally:
            service.stop()
    server = next(s for s in spans if s.kind == "SERVER" and s.trace_id == body["trace_id"])
    assert server.attributes["http.request.header.x_tenant"] == ["acme"]  # capture is on...
    recorded = json.dumps([s.attributes for s in spans], default=str)
    assert service.token not in recorded and "key-secret-123" not in recorded  # ...secrets are not


def _entry_points_installed() -> None:
    from opentelemetry.util._importlib_metadata import entry_points

    if not list(entry_points(group="opentelemetry_distro", name="flowexec")):
        pytest.fail("flowexec's opentelemetry entry points are not installed: run scripts/bootstrap.sh")


def _launched_hello(tmp_path: Path, env: dict[str, str]) -> tuple[LiveService, dict[str, Any]]:
    """The service under `opentelemetry-instrument gunicorn ...`, DJANGO_SETTINGS_MODULE left to the distro."""
    _entry_points_installed()
    service = start_service(
        tmp_path, server="gunicorn", launcher=True, env={"DJANGO_SETTINGS_MODULE": "", **FAST_BATCHES, **env}
    )
    try:
        assert service.http.request("GET", service.url + "/healthz").status == 200
        body = run_hello(service, baggage="client=cli,request_id=launched-1")
    except BaseException:
        service.stop()
        raise
    return service, body


@pytest.mark.parametrize("launcher", [False, True], ids=["plain", "opentelemetry-instrument"])
def test_opentelemetry_instrument_gives_the_same_trace_as_without_it(tmp_path: Path, launcher: bool) -> None:
    with OtlpReceiver() as receiver:
        env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url}
        if launcher:
            service, body = _launched_hello(tmp_path, env)
        else:
            service = start_service(tmp_path, server="gunicorn", env={**FAST_BATCHES, **env})
            service.http.request("GET", service.url + "/healthz")
            body = run_hello(service, baggage="client=cli,request_id=launched-1")
        try:
            spans = receiver.wait_for(has_execution_tree(body["trace_id"]), timeout=30)
            # /v1/traces (the receiver) answers without being traced either.
            service.request("POST", "/v1/traces", body=b"", headers={"Content-Type": "application/x-protobuf"})
        finally:
            service.stop()
    assert_one_tree(spans, body["trace_id"])
    mine = [span for span in spans if span.trace_id == body["trace_id"]]
    assert {(span.attributes.get("client"), span.attributes.get("request_id")) for span in mine} == {
        ("cli", "launched-1")
    }
    server = next(span for span in mine if span.kind == "SERVER")
    assert server.attributes["http.request.method"] == "POST" and "http.method" not in server.attributes
    targets = {span.attributes.get("http.route", "") for span in spans if span.kind == "SERVER"}
    assert targets == {"api/executions/"}, targets
    log = service.log()
    assert "already instrumented" not in log and "Traceback" not in log, log
    assert "Configuration of" not in log and "Failed to auto initialize" not in log, log
    assert log.count("tracing enabled: service.name=flowexec-service") == 2, log  # once per worker


def test_store_exporter_works_under_opentelemetry_instrument(tmp_path: Path) -> None:
    service, body = _launched_hello(tmp_path, {"OTEL_TRACES_EXPORTER": "store"})
    try:
        def stored() -> Any:
            response = service.request("GET", f"/api/traces/{body['trace_id']}/")
            return response.status == 200 and "execute_flow hello" in response.data.decode()

        wait_until(stored, timeout=20, message="spans in the embedded store")
    finally:
        service.stop()
    assert "exporters=store(database)" in service.log()

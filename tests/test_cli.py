"""The flowexec CLI as a real subprocess: exit codes, messages, start-up, and one connected trace."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveService, base_env, free_port, start_service, wait_until
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "flowexec.cli"]
# Start-up plus the bounded span flush (1.5 s) plus slack for a loaded 2-core machine.
QUICK_EXIT_SECONDS = 6.0


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion and capture its output."""
    return subprocess.run(
        [*CLI, *args],
        cwd=ROOT,
        env=env if env is not None else base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def timed_cli(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the CLI and return the result with its wall-clock duration."""
    started = time.monotonic()
    result = run_cli(*args, env=env)
    return result, time.monotonic() - started


def assert_exit(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The exit code is `code` and stderr is exactly one line containing every fragment, no traceback."""
    detail = f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == code, detail
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, detail
    assert "Traceback" not in result.stderr, detail
    for fragment in fragments:
        assert fragment in lines[0], detail
    return lines[0]


# --------------------------------------------------------------------------- no service needed


def test_importing_the_cli_loads_neither_django_nor_heavy_modules():
    code = (
        "import sys, flowexec.cli\n"
        "prefixes = ('opentelemetry.sdk', 'opentelemetry.exporter', 'opentelemetry.instrumentation')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('django', 'urllib3', 'requests')"
        " or m.startswith(prefixes)]\n"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_shows_commands_and_examples_without_importing_the_sdk_or_urllib3():
    code = (
        "import sys\n"
        "from flowexec.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "heavy = [m for m in sys.modules if m.startswith(('urllib3', 'opentelemetry', 'django'))]\n"
        "print('EXIT', code, heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("EXIT 0 []"), result.stdout
    for fragment in (
        "run",
        "get",
        "cancel",
        "list",
        "flows",
        "trace",
        "examples:",
        "flowexec run hello --input",
        "--url",
        "--token",
        "--request-id",
        "--json",
        "--timeout",
        "exit codes:",
    ):
        assert fragment in result.stdout


def test_version_names_the_cli_and_package_version():
    from flowexec import __version__

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"flowexec-cli {__version__}"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "required: COMMAND"),
        (("bogus",), "invalid choice"),
        (("run",), "required: FLOW"),
        (("run", "hello", "--input", "novalue"), "expected KEY=VALUE"),
        (("run", "hello", "--inputs-file", "/nonexistent/in.json"), "cannot read --inputs-file"),
        (("get", "not-a-uuid"), "expected a UUID"),
        (("trace", "xyz"), "expected 32 hex digits"),
        (("--timeout", "0", "flows"), "invalid --timeout"),
        (("--url", "ftp://127.0.0.1", "flows"), "invalid --url"),
        (("list", "--status", "sleeping"), "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, fragment):
    assert_exit(run_cli(*args), 2, fragment)


def test_unreachable_service_exits_3_quickly_with_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    result, elapsed = timed_cli("--url", url, "run", "hello")
    assert_exit(result, 3, "cannot reach the service at", url, "refused")
    # Its spans go to the same dead URL by default: the bounded flush keeps the exit quick.
    assert elapsed < QUICK_EXIT_SECONDS


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) and never answers: a hung service or backend."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def test_unresponsive_service_times_out_with_exit_3(silent_port):
    url = f"http://127.0.0.1:{silent_port}"
    result, elapsed = timed_cli("--url", url, "--timeout", "0.5", "flows")
    assert_exit(result, 3, "timed out after 0.5s", "--timeout")
    assert elapsed < 0.5 + QUICK_EXIT_SECONDS


class StubService:
    """A stand-in service answering every API call with one canned JSON response, recording requests."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.requests.append((self.command, self.path, dict(self.headers.items()), body))
                if self.path.startswith("/v1/traces"):
                    status, payload, kind = 200, b"", "application/x-protobuf"
                else:
                    status, kind = stub.status, "application/json"
                    payload = stub.body if isinstance(stub.body, bytes) else json.dumps(stub.body).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def api_requests(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if not r[1].startswith("/v1/traces")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Any]:
    """Factory for stub services, closed after the test."""
    made: list[StubService] = []

    def make(status: int, body: Any) -> StubService:
        made.append(StubService(status, body))
        return made[-1]

    yield make
    for each in made:
        each.close()


EXECUTION = {
    "id": "0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11",
    "flow": "hello",
    "flow_version": 1,
    "status": "succeeded",
    "inputs": {},
    "outputs": {"greeting": "Hello, Ada!"},
    "error": "",
    "trace_id": "ab" * 16,
    "request_id": "r",
    "steps": [],
    "step_count": 2,
    "links": {"admin": "http://x/admin/e/", "trace_ui": None},
}


@pytest.mark.parametrize(
    ("status", "body", "code", "fragment"),
    [
        (401, {"detail": "Invalid token."}, 3, "authentication refused"),
        (403, {"detail": "You do not have permission."}, 3, "authentication refused"),
        (
            400,
            {"detail": "invalid", "problems": ['input "n": expected integer', 'step "a": x']},
            2,
            'invalid request: input "n": expected integer; step "a": x',
        ),
        (400, {"flow": ["This field is required."]}, 2, "flow: This field is required."),
        (404, {"detail": "No Flow matches the given query."}, 2, "not found: No Flow matches"),
        (500, {"detail": "A server error occurred."}, 3, "service error 500"),
        (200, b"<html>proxy page</html>", 3, "not a JSON response"),
        (
            201,
            {**EXECUTION, "status": "failed", "error": 'step "boom": this step always fails'},
            1,
            'step "boom": this step always fails',
        ),
    ],
)
def test_http_outcomes_map_to_exit_codes_with_one_line(stub, status, body, code, fragment):
    service = stub(status, body)
    assert_exit(run_cli("--url", service.url, "--token", "k", "run", "hello"), code, fragment)


def test_requests_carry_trace_context_baggage_request_id_user_agent_and_token(stub):
    from flowexec import __version__

    service = stub(201, EXECUTION)
    env = base_env(FLOWEXEC_URL=service.url, FLOWEXEC_TOKEN="secret-key")
    result = run_cli("run", "hello", "--input", "name=Ada", "--request-id", "rid-42", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [(method, path, headers, body)] = service.api_requests()
    assert (method, path) == ("POST", "/api/executions/")
    assert json.loads(body) == {"flow": "hello", "inputs": {"name": "Ada"}, "wait": True, "client": "cli"}
    assert headers["User-Agent"] == f"flowexec-cli/{__version__}"
    assert headers["X-Request-ID"] == "rid-42"
    assert headers["Authorization"] == "Token secret-key"
    assert headers["traceparent"].startswith("00-")
    assert len(headers["traceparent"]) == 55
    assert {"request_id=rid-42", "client=cli"} <= set(headers["baggage"].replace(" ", "").split(","))
    for fragment in (
        '"greeting": "Hello, Ada!"',
        f"execution id: {EXECUTION['id']}",
        f"trace id:     {'ab' * 16}",
        "admin:        http://x/admin/e/",
    ):
        assert fragment in result.stdout
    # The CLI's own spans went to {url}/v1/traces with the token, before the process exited.
    exports = [r for r in service.requests if r[1] == "/v1/traces"]
    assert exports
    assert {k.lower(): v for k, v in exports[0][2].items()}["authorization"] == "Token secret-key"


def test_otel_traces_exporter_none_exports_nothing(stub):
    service = stub(201, EXECUTION)
    result = run_cli("--url", service.url, "run", "hello", env=base_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert [r[1] for r in service.requests] == ["/api/executions/"]


# --------------------------------------------------------------------------- against the live service


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """One OTLP/HTTP receiver for the service and the CLIs of this module."""
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[LiveService]:
    """The real service exporting to the receiver and to its own store (for `flowexec trace`)."""
    started = start_service(
        tmp_path_factory.mktemp("cli-service"),
        env={
            "OTEL_TRACES_EXPORTER": "otlp,store",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        },
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def slow_flow(service: LiveService) -> str:
    """A stored flow that sleeps long enough to be interrupted."""
    document = {
        "name": "cli-slow",
        "version": 1,
        "description": "sleeps",
        "steps": [
            {"name": "warmup", "type": "sleep", "seconds": 0.2},
            {"name": "nap", "type": "sleep", "seconds": 30, "after": ["warmup"]},
        ],
    }
    response = service.request("POST", "/api/flows/", json=document)
    assert response.status in (200, 201), response.data
    return document["name"]


def receiver_env(service: LiveService, receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    """CLI environment exporting its spans to the test receiver."""
    return service.client_env(
        OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint, **extra
    )


def execution_row(service: LiveService, execution_id: str) -> dict[str, Any]:
    """GET /api/executions/{id}/ straight from the service."""
    response = service.request("GET", f"/api/executions/{execution_id}/")
    assert response.status == 200, response.data
    return json.loads(response.data)


def executions_for(service: LiveService, request_id: str) -> list[dict[str, Any]]:
    """Executions the service stored for one request id."""
    response = service.request("GET", f"/api/executions/?request_id={request_id}")
    assert response.status == 200, response.data
    return json.loads(response.data)["results"]


def one(spans: list[ReceivedSpan], **match: Any) -> ReceivedSpan:
    """The single span whose fields equal `match`."""
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} spans match {match}: {[(s.service_name, s.name) for s in spans]}"
    return found[0]


@pytest.mark.slow
def test_cli_run_is_one_trace_from_cli_span_to_steps(service, receiver):
    from flowexec import __version__

    request_id = f"cli-{uuid.uuid4()}"
    env = receiver_env(service, receiver)
    result = run_cli("--json", "run", "hello", "--input", "name=Ada", "--request-id", request_id, env=env)
    assert result.returncode == 0, result.stderr
    execution = json.loads(result.stdout)
    assert execution["outputs"] == {"greeting": "Hello, Ada!", "shouted": "HELLO, ADA!"}
    trace_id = execution["trace_id"]

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {(s.service_name, s.name) for s in spans if s.trace_id == trace_id}
        return {("flowexec-cli", "flowexec run"), ("flowexec-service", "step shout")} <= names

    spans = [s for s in receiver.wait_for(complete, timeout=15) if s.trace_id == trace_id]
    root = one(spans, name="flowexec run")
    assert (root.service_name, root.parent_id) == ("flowexec-cli", "")
    assert root.attributes["request_id"] == request_id
    assert root.attributes["flow.name"] == "hello"
    assert root.attributes["flow.execution.id"] == execution["id"]
    client = one(spans, service_name="flowexec-cli", kind="CLIENT")
    assert client.parent_id == root.span_id
    server = one(spans, service_name="flowexec-service", kind="SERVER")
    assert server.parent_id == client.span_id
    assert server.attributes["request_id"] == request_id
    assert server.attributes["user_agent.original"] == f"flowexec-cli/{__version__}"
    assert server.attributes.get("client") == "cli"  # from the W3C baggage the CLI sent
    by_id = {s.span_id: s for s in spans}

    def ancestors(span: ReceivedSpan) -> list[str]:
        chain = []
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            chain.append(span.span_id)
        return chain

    flow_span = one(spans, name="execute_flow hello")
    assert server.span_id in ancestors(flow_span)
    for step in ("step hello", "step shout"):
        assert flow_span.span_id in ancestors(one(spans, name=step))
    row = execution_row(service, execution["id"])
    assert (row["trace_id"], row["request_id"], row["client"]) == (trace_id, request_id, "cli")


@pytest.mark.slow
def test_cli_spans_go_to_the_service_by_default_and_trace_prints_the_tree(service):
    env = service.client_env()  # no OTEL_*: OTLP to {FLOWEXEC_URL}/v1/traces with the token
    result = run_cli("run", "hello", env=env)
    assert result.returncode == 0, result.stderr
    trace_id = next(line.split()[-1] for line in result.stdout.splitlines() if line.startswith("trace id:"))
    assert f"flowexec --url {service.url} trace {trace_id}" in result.stdout

    def stored_tree() -> str | None:
        shown = run_cli("trace", trace_id, env=env)
        if shown.returncode == 0 and "[flowexec-cli]" in shown.stdout and "step shout" in shown.stdout:
            return shown.stdout
        return None

    tree = wait_until(stored_tree, timeout=20, interval=0.2, message="the CLI and service spans in the store")
    lines = tree.splitlines()
    indent = {line.strip().split("  [")[0]: len(line) - len(line.lstrip()) for line in lines[1:]}
    assert lines[0] == f"trace {trace_id}"
    assert indent["flowexec run"] < indent["execute_flow hello"] < indent["step shout"]
    assert any("[flowexec-cli]" in line and " ms" in line for line in lines)
    assert any("[flowexec-service]" in line and "execute_flow hello" in line for line in lines)


@pytest.mark.slow
def test_failed_flow_exits_1_with_its_error_and_records_it(service, receiver):
    request_id = f"cli-{uuid.uuid4()}"
    result = run_cli("run", "failing", "--request-id", request_id, env=receiver_env(service, receiver))
    line = assert_exit(result, 1, "failing", "failed", "this step always fails")
    assert line.startswith("flowexec: execution ")
    assert "boom  failed" in result.stdout  # the failed step is listed
    [row] = executions_for(service, request_id)
    assert row["status"] == "failed"
    spans = receiver.wait_for(
        lambda spans: any(s.name == "flowexec run" and s.trace_id == row["trace_id"] for s in spans),
        timeout=15,
    )
    assert one([s for s in spans if s.trace_id == row["trace_id"]], name="flowexec run").status_code == "ERROR"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("run", "no-such-flow"), "no-such-flow"),
        (("run", "parallel", "--input", "numbers=not-a-list"), '"numbers"'),
        (("get", str(uuid.UUID(int=1))), "not found"),
    ],
)
def test_rejected_requests_exit_2_with_the_services_message(service, args, fragment):
    assert_exit(run_cli(*args, env=service.client_env(OTEL_TRACES_EXPORTER="none")), 2, fragment)


@pytest.mark.slow
def test_wrong_token_exits_3_as_auth_refused(service):
    env = {**service.client_env(OTEL_TRACES_EXPORTER="none"), "FLOWEXEC_TOKEN": "wrong-token"}
    assert_exit(run_cli("flows", env=env), 3, "authentication refused", "(401)")
    env.pop("FLOWEXEC_TOKEN")
    assert_exit(run_cli("flows", env=env), 3, "authentication refused", "set --token or FLOWEXEC_TOKEN")


@pytest.mark.slow
def test_async_submit_then_get_list_and_flows(service):
    env = service.client_env()
    submitted = run_cli("--json", "run", "parallel", "--async", env=env)
    assert submitted.returncode == 0, submitted.stderr
    execution = json.loads(submitted.stdout)
    assert execution["status"] in ("pending", "running", "succeeded")

    def finished() -> dict[str, Any] | None:
        shown = run_cli("--json", "get", execution["id"], env=env)
        assert shown.returncode == 0, shown.stderr
        body = json.loads(shown.stdout)
        return body if body["status"] == "succeeded" else None

    done = wait_until(finished, timeout=20, interval=0.1, message="the async execution to succeed")
    assert done["outputs"]["total"] == 10
    listed = run_cli("list", "--flow", "parallel", "--status", "succeeded", env=env)
    assert listed.returncode == 0
    assert execution["id"] in listed.stdout
    flows = run_cli("flows", env=env)
    assert flows.returncode == 0
    assert any(line.split()[:2] == ["hello", "1"] for line in flows.stdout.splitlines())


@pytest.mark.slow
def test_wait_polls_to_the_end_quietly_when_not_a_terminal(service):
    result = run_cli("run", "parallel", "--wait", env=service.client_env())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "succeeded" in result.stdout
    assert '"total": 10' in result.stdout


@pytest.mark.slow
def test_wait_shows_step_progress_on_a_terminal(service, slow_flow):
    leader, follower = pty.openpty()
    env = service.client_env(OTEL_TRACES_EXPORTER="none")
    process = subprocess.Popen(
        [*CLI, "--timeout", "1", "run", slow_flow, "--wait"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    seen = b""

    def progress_seen() -> bool:
        nonlocal seen
        if select.select([leader], [], [], 0.1)[0]:
            try:
                seen += os.read(leader, 4096)
            except OSError:  # the CLI exited and closed the terminal
                return True
        return b"steps" in seen and b"elapsed" in seen

    try:
        wait_until(progress_seen, timeout=15, interval=0, message="a progress line on the terminal")
        assert process.wait(timeout=15) == 3  # --timeout 1 ends the wait on the 30 s nap
    finally:
        process.kill()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert f"{slow_flow}: " in text
    assert "/2 steps" in text
    assert "s elapsed" in text


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--wait", "sync"])
def test_ctrl_c_while_waiting_cancels_the_execution_and_exits_130(service, slow_flow, mode):
    request_id = f"cli-{uuid.uuid4()}"
    args = [*CLI, "run", slow_flow, "--request-id", request_id, *([mode] if mode != "sync" else [])]
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env=service.client_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = wait_until(
            lambda: [e for e in executions_for(service, request_id) if e["status"] == "running"],
            timeout=15,
            message="the execution to be running",
        )
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    assert_exit(result, 130, "interrupted", f"asked the service to cancel execution {running[0]['id']}")
    assert execution_row(service, running[0]["id"])["status"] == "cancelled"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["refused", "silent"])
def test_dead_trace_backend_neither_fails_nor_delays_the_cli(service, silent_port, backend):
    port = silent_port if backend == "silent" else free_port()
    baseline, baseline_seconds = timed_cli("run", "hello", env=service.client_env(OTEL_TRACES_EXPORTER="none"))
    assert baseline.returncode == 0, baseline.stderr
    env = service.client_env(
        OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}/v1/traces"
    )
    result, seconds = timed_cli("run", "hello", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Hello, world!" in result.stdout
    # The CLI's export budget is 0.75 s and its flush is capped at 1.5 s; with no backend it costs no more.
    assert seconds < baseline_seconds + 1.5, (seconds, baseline_seconds)

"""The flowexec CLI as a real subprocess: exit codes, messages, start-up, and one connected trace."""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterator
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


Responder = Callable[[str, str, bytes], "tuple[int, Any]"]


class StubService:
    """A stand-in service: `respond(method, path, body)` gives (status, JSON or bytes); requests are recorded."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
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
                    status, answer = stub.respond(self.command, self.path, body)
                    kind = "application/json"
                    payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the CLI gave up waiting (--timeout) and hung up
                    self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def api_requests(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if not r[1].startswith("/v1/traces")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Any]:
    """Factory for stub services answering every call alike (status, body) or through a responder function."""
    made: list[StubService] = []

    def make(status: int | Responder, body: Any = None) -> StubService:
        respond = status if callable(status) else (lambda method, path, raw: (status, body))
        made.append(StubService(respond))
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
        (403, {"detail": "You do not have permission."}, 3, "permission denied"),
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


def test_per_command_help_has_examples_and_global_options_apart():
    for command in ("run", "watch", "get", "cancel", "list", "flows", "flows apply", "flows validate", "trace"):
        result = run_cli(*command.split(), "--help")
        assert result.returncode == 0, result.stderr
        assert "examples:" in result.stdout, command
        assert "global options (before or after the command):" in result.stdout, command
        assert f"flowexec {command}" in result.stdout.split("examples:", 1)[1], command


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_a_script_generated_from_the_parser(shell):
    result = run_cli("completion", shell)
    assert result.returncode == 0, result.stderr
    assert "complete -F _flowexec_complete flowexec" in result.stdout
    assert "'flows apply')" in result.stdout and "--since" in result.stdout
    assert ("#compdef flowexec" in result.stdout) is (shell == "zsh")


# --------------------------------------------------------------------------- where the CLI's spans go


def header_values(requests: list[tuple[dict[str, str], bytes]]) -> list[str]:
    """Every header (or gRPC metadata) name and value the receiver saw, lower-cased."""
    return [f"{key}: {value}".lower() for headers, _ in requests for key, value in headers.items()]


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"])
def test_a_third_party_collector_gets_the_cli_spans_over_http_but_never_the_token(stub, variable):
    service = stub(201, EXECUTION)
    with OtlpReceiver() as collector:
        endpoint = collector.endpoint if variable.endswith("TRACES_ENDPOINT") else collector.base_url
        env = base_env(FLOWEXEC_URL=service.url, FLOWEXEC_TOKEN="secret-key", OTEL_TRACES_EXPORTER="otlp")
        result = run_cli("run", "hello", env={**env, variable: endpoint})
        assert result.returncode == 0, result.stderr
        collector.wait_for(lambda spans: any(s.name == "flowexec run" for s in spans), timeout=10)
        seen = header_values(collector.requests)
    assert not [line for line in seen if "secret-key" in line or line.startswith("authorization")], seen
    [(_, _, headers, _)] = service.api_requests()
    assert headers["Authorization"] == "Token secret-key"  # the API itself still gets it


def test_cli_spans_export_over_grpc_without_the_token(stub):
    from tests.otlp_receiver import GrpcOtlpReceiver

    service = stub(201, EXECUTION)
    with GrpcOtlpReceiver() as collector:
        env = base_env(
            FLOWEXEC_URL=service.url,
            FLOWEXEC_TOKEN="secret-key",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.base_url,
        )
        result = run_cli("-v", "run", "hello", env=env)
        assert result.returncode == 0, result.stderr
        spans = collector.wait_for(lambda spans: any(s.name == "flowexec run" for s in spans), timeout=10)
        seen = header_values(collector.requests)
    assert "Metadata key" not in result.stderr
    assert {s.service_name for s in spans} == {"flowexec-cli"}
    assert not [line for line in seen if "secret-key" in line or line.startswith("authorization")], seen


def test_traceparent_tracestate_and_baggage_from_the_environment_continue_the_callers_trace(stub):
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    service = stub(201, EXECUTION)
    with OtlpReceiver() as collector:
        env = base_env(
            FLOWEXEC_URL=service.url,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.endpoint,
            TRACEPARENT=f"00-{trace_id}-{parent_id}-01",
            TRACESTATE="ci=job42",
            BAGGAGE="ci.pipeline=main,request_id=ci-7",
        )
        result = run_cli("run", "hello", env=env)
        assert result.returncode == 0, result.stderr
        spans = collector.wait_for(lambda spans: any(s.name == "flowexec run" for s in spans), timeout=10)
    root = one(spans, name="flowexec run")
    assert (root.trace_id, root.parent_id) == (trace_id, parent_id)
    assert root.attributes["request_id"] == "ci-7"  # the caller's request id, not a new one
    [(_, _, headers, _)] = service.api_requests()
    assert headers["X-Request-ID"] == "ci-7"
    assert headers["traceparent"].startswith(f"00-{trace_id}-")
    assert headers["tracestate"] == "ci=job42"
    assert "ci.pipeline=main" in headers["baggage"] and "client=cli" in headers["baggage"]


@pytest.mark.parametrize("traceparent", ["00-zz-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01", "junk"])
def test_an_invalid_traceparent_in_the_environment_is_ignored_but_its_baggage_still_counts(stub, traceparent):
    service = stub(201, EXECUTION)
    env = base_env(FLOWEXEC_URL=service.url, OTEL_TRACES_EXPORTER="none", TRACEPARENT=traceparent, BAGGAGE="ci=1")
    result = run_cli("run", "hello", env=env)
    assert result.returncode == 0, result.stderr
    [(_, _, headers, _)] = service.api_requests()
    assert headers["traceparent"].split("-")[1] not in traceparent  # a new trace
    assert "ci=1" in headers["baggage"]  # the environment was read: only the invalid value was dropped


# --------------------------------------------------------------------------- Unix manners


def test_a_closed_output_pipe_ends_quietly_like_a_unix_tool(stub):
    page = {"next": None, "results": [{**EXECUTION, "id": str(uuid.uuid4())} for _ in range(50)]}
    service = stub(200, page)
    process = subprocess.Popen(
        [*CLI, "--url", service.url, "list"],
        cwd=ROOT,
        env=base_env(OTEL_TRACES_EXPORTER="none"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # `| head` that already read what it wanted
    stderr = process.stderr.read()
    assert process.wait(timeout=30) == 141, stderr
    assert stderr == ""


def test_an_unexpected_error_has_its_own_exit_code_not_the_flow_failed_one(stub):
    service = stub(201, ["not", "an", "execution"])
    result = run_cli("--url", service.url, "run", "hello", env=base_env(OTEL_TRACES_EXPORTER="none"))
    assert_exit(result, 4, "unexpected error")


# --------------------------------------------------------------------------- following a run


def execution(status: str, **fields: Any) -> dict[str, Any]:
    """EXECUTION in another state."""
    body = {**EXECUTION, "status": status, **fields}
    if status != "succeeded":
        body["outputs"] = fields.get("outputs", {})
    return body


class Sequenced:
    """Answers GET /api/executions/{id}/ with the given states in turn (the last one repeats)."""

    def __init__(self, *states: dict[str, Any]) -> None:
        self.states = list(states)

    def next(self) -> dict[str, Any]:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


@pytest.mark.parametrize(("final", "code"), [("succeeded", 0), ("failed", 1)])
def test_sync_run_past_its_timeout_prints_the_id_and_follows_to_the_flows_exit_code(stub, final, code):
    release = threading.Event()
    polls = Sequenced(execution("running"), execution("running"), execution(final, error="boom"))
    detail = f"/api/executions/{EXECUTION['id']}/"

    def respond(method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "POST":
            release.wait(20)  # a service still waiting on the flow when the CLI's --timeout passes
            return 201, execution(final)
        if path == "/api/executions/?request_id=slow-1":
            return 200, {"next": None, "results": [execution("running")]}
        assert path == detail, path
        return 200, polls.next()

    service = stub(respond)
    try:
        result = run_cli(
            "--url",
            service.url,
            "--timeout",
            "0.5",
            "run",
            "hello",
            "--request-id",
            "slow-1",
            env=base_env(OTEL_TRACES_EXPORTER="none"),
        )
    finally:
        release.set()
    assert result.returncode == code, result.stderr
    first = result.stderr.splitlines()[0]
    assert f"execution {EXECUTION['id']} running; following it" in first
    assert f"flowexec watch {EXECUTION['id']}" in first
    assert f"execution {EXECUTION['id']}  {final}" in result.stdout
    assert f"execution id: {EXECUTION['id']}" in result.stdout
    assert [p for m, p, *_ in service.api_requests()].count(detail) >= 3


def test_a_202_from_the_service_hands_over_to_polling_until_the_end(stub):
    polls = Sequenced(execution("running"), execution("succeeded"))

    def respond(method: str, path: str, body: bytes) -> tuple[int, Any]:
        return (202, execution("running")) if method == "POST" else (200, polls.next())

    service = stub(respond)
    result = run_cli("--url", service.url, "--json", "run", "hello", env=base_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"] == EXECUTION["outputs"]
    assert f"execution {EXECUTION['id']} running; following it" in result.stderr


def test_detach_submits_without_following(stub):
    service = stub(202, execution("pending"))
    result = run_cli("--url", service.url, "run", "hello", "--detach", env=base_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert f"follow it with:  flowexec watch {EXECUTION['id']}" in result.stdout
    [(method, _, _, body)] = service.api_requests()
    assert method == "POST" and json.loads(body)["wait"] is False


@pytest.mark.parametrize(("final", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 1)])
def test_watch_follows_an_execution_with_the_same_output_and_exit_code_as_run(stub, final, code):
    finished = execution(final, error="" if final == "succeeded" else "it broke")
    polls = Sequenced(execution("pending"), execution("running"), finished)
    service = stub(lambda method, path, body: (201, finished) if method == "POST" else (200, polls.next()))
    env = base_env(OTEL_TRACES_EXPORTER="none")
    watch = run_cli("--url", service.url, "watch", EXECUTION["id"], env=env)
    assert len(service.api_requests()) == 3
    ran = run_cli("--url", service.url, "run", "hello", env=env)
    assert (watch.returncode, ran.returncode) == (code, code), watch.stderr
    assert watch.stdout == ran.stdout
    following = [line for line in watch.stderr.splitlines() if "following it" in line]
    assert len(following) == 1
    assert [line for line in watch.stderr.splitlines() if line not in following] == ran.stderr.splitlines()


# --------------------------------------------------------------------------- list: paging and filters


def listing(count: int, start: int = 0, minutes_ago: int = 0) -> list[dict[str, Any]]:
    """`count` executions, newest first, created a minute apart from `minutes_ago` on."""
    now = time.time()
    return [
        {
            **EXECUTION,
            "id": str(uuid.UUID(int=start + n + 1)),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60 * (minutes_ago + n))),
        }
        for n in range(count)
    ]


def paged(pages: dict[str, dict[str, Any]]) -> Responder:
    """Answer GET /api/executions/ by its cursor parameter (none: the first page)."""

    def respond(method: str, path: str, body: bytes) -> tuple[int, Any]:
        cursor = next(
            (part.split("=", 1)[1] for part in path.split("?", 1)[-1].split("&") if part.startswith("cursor=")), ""
        )
        return 200, pages[cursor]

    return respond


PAGES = {
    # `next` names another host, as behind a proxy: only its path and query are followed, with our base URL.
    "": {"next": "http://elsewhere.invalid:9/api/executions/?cursor=p2&status=failed", "results": listing(3)},
    "p2": {"next": "http://elsewhere.invalid:9/api/executions/?cursor=p3&status=failed", "results": listing(3, 3)},
    "p3": {"next": None, "results": listing(1, 6)},
}


def test_list_follows_next_pages_up_to_the_limit_with_every_filter(stub):
    service = stub(paged(PAGES))
    env = base_env(OTEL_TRACES_EXPORTER="none")
    trace_id = "ab" * 16
    filters = ["--status", "failed", "--flow", "hello", "--request-id", "rid-1", "--trace-id", trace_id]
    result = run_cli("--url", service.url, "list", "--limit", "5", *filters, "--client", "cli", env=env)
    assert result.returncode == 0, result.stderr
    paths = [path for _, path, *_ in service.api_requests()]
    assert len(paths) == 2
    first = dict(part.split("=", 1) for part in paths[0].split("?", 1)[1].split("&"))
    wanted = {"status": "failed", "flow": "hello", "request_id": "rid-1", "trace_id": trace_id, "client": "cli"}
    assert first == {**wanted, "page_size": "5"}
    assert paths[1] == "/api/executions/?cursor=p2&status=failed"
    shown = [str(uuid.UUID(int=n)) for n in range(1, 6)]
    assert [line.split()[0] for line in result.stdout.splitlines()[1:6]] == shown
    assert str(uuid.UUID(int=6)) not in result.stdout
    assert "more match: raise --limit" in result.stdout
    everything = run_cli("--url", service.url, "--json", "list", "--limit", "50", env=env)
    body = json.loads(everything.stdout)
    assert (len(body["results"]), body["more"]) == (7, False)


def test_list_since_stops_at_the_first_older_execution(stub):
    pages = {
        "": {"next": "/api/executions/?cursor=p2", "results": [*listing(2), *listing(2, 2, minutes_ago=30)]},
        "p2": {"next": None, "results": listing(2, 4, minutes_ago=40)},
    }
    service = stub(paged(pages))
    result = run_cli(
        "--url", service.url, "--json", "list", "--since", "10m", env=base_env(OTEL_TRACES_EXPORTER="none")
    )
    assert result.returncode == 0, result.stderr
    assert [e["id"] for e in json.loads(result.stdout)["results"]] == [str(uuid.UUID(int=n)) for n in (1, 2)]
    [(_, path, _, _)] = service.api_requests()  # no page beyond the first older execution
    assert "since=" in path


# --------------------------------------------------------------------------- flows apply / validate


def test_flows_apply_creates_or_versions_each_file_and_exits_2_with_every_problem(stub, tmp_path):
    (tmp_path / "a-new.json").write_text(json.dumps({"name": "fresh", "steps": []}))
    (tmp_path / "b-same.yaml").write_text("name: same\nsteps: []\n")
    (tmp_path / "c-bad.yml").write_text("name: bad\nsteps: [{name: a, type: teleport}]\n")

    def respond(method: str, path: str, body: bytes) -> tuple[int, Any]:
        assert (method, path) == ("POST", "/api/flows/")
        if b"bad" in body:
            return 400, {"detail": "invalid flow", "problems": ['step "a": unknown type "teleport"', "second problem"]}
        name = "fresh" if b"fresh" in body else "same"
        return (201 if name == "fresh" else 200), {"name": name, "version": 2 if name == "fresh" else 1}

    service = stub(respond)
    env = base_env(OTEL_TRACES_EXPORTER="none")
    result = run_cli("--url", service.url, "flows", "apply", str(tmp_path), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == [
        f"created   fresh v2  ({tmp_path / 'a-new.json'})",
        f"unchanged same v1  ({tmp_path / 'b-same.yaml'})",
    ]
    assert result.stderr.splitlines() == [
        f'{tmp_path / "c-bad.yml"}: step "a": unknown type "teleport"',
        f"{tmp_path / 'c-bad.yml'}: second problem",
    ]
    types = [headers["Content-Type"] for _, _, headers, _ in service.api_requests()]
    assert types == ["application/json", "application/yaml", "application/yaml"]
    ok = run_cli("--url", service.url, "flows", "apply", str(tmp_path / "a-new.json"), env=env)
    assert ok.returncode == 0, ok.stderr
    missing = run_cli("--url", service.url, "flows", "apply", str(tmp_path / "nope.json"), env=env)
    assert_exit(missing, 2, "no such file")


def test_flows_validate_reports_every_problem_locally_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsteps:\n  - {name: a, type: teleport}\n"
        "  - {name: a, type: template, template: x}\n"
        "  - {name: c, type: template, template: '${steps.b.output}'}\n"
    )
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"name": "good", "steps": [{"name": "f", "type": "python", "function": "site.custom"}]}))
    result = run_cli("flows", "validate", str(good), str(bad), env=base_env(FLOWEXEC_URL="http://127.0.0.1:9"))
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == [f"valid     good  ({good})"]
    problems = result.stderr.splitlines()
    assert len(problems) >= 3 and all(line.startswith(f"{bad}: ") for line in problems)
    assert any("teleport" in line for line in problems) and any('"b"' in line for line in problems)
    assert run_cli("flows", "validate", str(ROOT / "examples" / "flows")).returncode == 0


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
        # The server span ends last in the service and may come in a later batch than its steps.
        server = any(s.kind == "SERVER" for s in spans if s.trace_id == trace_id)
        return server and {("flowexec-cli", "flowexec run"), ("flowexec-service", "step shout")} <= names

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
    assert_exit(run_cli("flows", env=env), 3, "authentication refused", "FLOWEXEC_TOKEN or the config file")


@pytest.mark.slow
def test_async_submit_then_get_list_and_flows(service):
    env = service.client_env()
    submitted = run_cli("--json", "run", "parallel", "--detach", env=env)
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
def test_the_old_async_wait_spelling_still_follows_to_the_end_quietly_off_a_terminal(service):
    result = run_cli("run", "parallel", "--async", "--wait", env=service.client_env())
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert '"total": 10' in result.stdout


@pytest.mark.slow
def test_sync_run_past_its_timeout_follows_the_real_service_to_the_flows_outputs(service):
    document = {
        "name": "cli-nap",
        "steps": [
            {"name": "nap", "type": "sleep", "seconds": 1.5},
            {"name": "done", "type": "template", "template": "rested", "after": ["nap"]},
        ],
        "outputs": {"state": "${steps.done.output}"},
    }
    assert service.request("POST", "/api/flows/", json=document).status in (200, 201)
    request_id = f"cli-{uuid.uuid4()}"
    env = service.client_env(OTEL_TRACES_EXPORTER="none")
    result = run_cli("--timeout", "0.5", "--json", "run", "cli-nap", "--request-id", request_id, env=env)
    assert result.returncode == 0, result.stderr
    [row] = executions_for(service, request_id)
    assert f"execution {row['id']} " in result.stderr.splitlines()[0]
    assert json.loads(result.stdout)["outputs"] == {"state": "rested"}


@pytest.mark.slow
def test_run_shows_step_progress_on_a_terminal(service, slow_flow):
    leader, follower = pty.openpty()
    env = service.client_env(OTEL_TRACES_EXPORTER="none")
    process = subprocess.Popen(
        [*CLI, "run", slow_flow],
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
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 130
    finally:
        process.kill()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert f"{slow_flow}: " in text
    assert "/2 steps" in text
    assert "s elapsed" in text
    assert "following it" in text  # the execution id, as soon as it existed


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["past-timeout", "sync"])
def test_ctrl_c_while_waiting_cancels_the_execution_and_exits_130(service, slow_flow, mode):
    request_id = f"cli-{uuid.uuid4()}"
    timeout = ["--timeout", "0.5"] if mode == "past-timeout" else []
    args = [*CLI, *timeout, "run", slow_flow, "--request-id", request_id]
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
        if mode == "past-timeout":  # the sync request timed out: it found the execution and follows it by id
            assert select.select([process.stderr], [], [], 15)[0], "no hand-over line"
            assert f"execution {running[0]['id']} running; following it" in process.stderr.readline()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    assert result.returncode == 130, result
    assert f"asked the service to cancel execution {running[0]['id']}" in stderr.splitlines()[-1]
    assert execution_row(service, running[0]["id"])["status"] == "cancelled"


@pytest.mark.slow
def test_flows_apply_against_the_service_creates_versions_and_refuses_invalid_files(service, tmp_path):
    env = service.client_env(OTEL_TRACES_EXPORTER="none")
    unchanged = run_cli("flows", "apply", str(ROOT / "examples" / "flows" / "hello.json"), env=env)
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout.startswith("unchanged hello v1")
    (tmp_path / "applied.yaml").write_text(
        f"name: cli-applied-{uuid.uuid4().hex[:8]}\nsteps:\n  - {{name: a, type: template, template: hi}}\n"
    )
    (tmp_path / "broken.json").write_text('{"name": "broken", "steps": [{"name": "a", "type": "teleport"}]}')
    result = run_cli("flows", "apply", str(tmp_path), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith("created   cli-applied-")
    assert 'broken.json: step "a": unknown type "teleport"' in result.stderr


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


@pytest.mark.slow
def test_list_against_the_service_filters_by_request_id_and_cuts_at_the_limit(service):
    request_id = f"cli-list-{uuid.uuid4()}"
    for _ in range(4):
        response = service.request(
            "POST", "/api/executions/", json={"flow": "hello"}, headers={"X-Request-ID": request_id}
        )
        assert response.status == 201, response.data
    env = service.client_env(OTEL_TRACES_EXPORTER="none")
    cut = run_cli("--json", "list", "--request-id", request_id, "--limit", "3", "--since", "1h", env=env)
    assert cut.returncode == 0, cut.stderr
    body = json.loads(cut.stdout)
    assert (len(body["results"]), body["more"]) == (3, True)
    assert {e["request_id"] for e in body["results"]} == {request_id}
    whole = json.loads(run_cli("--json", "list", "--request-id", request_id, "--client", "api", env=env).stdout)
    assert (len(whole["results"]), whole["more"]) == (4, False)
    created = [e["created_at"] for e in whole["results"]]
    assert created == sorted(created, reverse=True)
    none = json.loads(run_cli("--json", "list", "--request-id", request_id, "--client", "cli", env=env).stdout)
    assert none["results"] == []

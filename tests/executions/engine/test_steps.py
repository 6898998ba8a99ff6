"""Step types against real collaborators: http against a local server, templates without eval."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from executions import engine

ALLOW_LOCAL = engine.EngineConfig(http_allowed_hosts=frozenset({"127.0.0.1"}), default_step_timeout=5.0)


class Handler(BaseHTTPRequestHandler):
    """A few fixed routes; every request is recorded on the server."""

    server: LocalServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        routes = {
            "/json": (200, {"Content-Type": "application/json"}, json.dumps({"ok": True, "items": [1, 2]})),
            "/text": (200, {"Content-Type": "text/plain; charset=utf-8"}, "plain words"),
            "/echo": (200, {"Content-Type": "application/json"}, body.decode() or "null"),
            "/missing": (404, {"Content-Type": "text/plain"}, "no such thing"),
            "/redirect-local": (302, {"Location": "/json"}, ""),
            "/see-other": (303, {"Location": "/json"}, ""),
            "/redirect-out": (302, {"Location": "http://evil.example/steal"}, ""),
            "/loop": (302, {"Location": "/loop"}, ""),
        }
        status, headers, text = routes.get(self.path, (500, {}, "unexpected path"))
        data = text.encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class LocalServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 remembering the requests it got."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"http://127.0.0.1:{self.server_port}{path}"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local HTTP server running for one test."""
    local = LocalServer()
    thread = threading.Thread(target=local.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield local
    local.shutdown()
    local.server_close()
    thread.join(5)


def run_step(step: dict, config: engine.EngineConfig = ALLOW_LOCAL, **inputs: Any) -> engine.RunResult:
    """Run a one-step flow whose output is the step's output."""
    declared = {name: {"type": "object" if isinstance(value, dict) else "string"} for name, value in inputs.items()}
    document = {
        "name": "one",
        "inputs": declared,
        "steps": [step],
        "outputs": {"out": f"${{steps.{step['name']}.output}}"},
    }
    definition = engine.parse(document, config=config)
    return engine.run(definition, engine.bind_inputs(definition, inputs), config=config)


def test_http_json_response(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "method": "GET", "url": server.url("/json")})
    assert result.outputs == {"out": {"status": 200, "json": {"ok": True, "items": [1, 2]}}}


def test_http_text_response(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "url": server.url("/text")})
    assert result.outputs == {"out": {"status": 200, "text": "plain words"}}


def test_http_sends_json_body_and_headers_from_references(server: LocalServer) -> None:
    step = {
        "name": "post",
        "type": "http",
        "method": "POST",
        "url": server.url("/echo"),
        "headers": {"X-Who": "${inputs.who}"},
        "json": {"greeting": "hi ${inputs.who}"},
    }
    result = run_step(step, who="ada")
    assert result.outputs == {"out": {"status": 200, "json": {"greeting": "hi ada"}}}
    method, _, headers, _ = server.requests[0]
    assert method == "POST"
    assert headers["X-Who"] == "ada"
    assert headers["Content-Type"] == "application/json"


def test_http_error_status_fails_the_step(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "url": server.url("/missing")})
    assert result.status == "failed"
    assert result.error == f'step "get": HTTP 404 from {server.url("/missing")}: no such thing'


def test_http_disallowed_host_is_rejected_without_a_request(server: LocalServer) -> None:
    config = engine.EngineConfig(http_allowed_hosts=frozenset({"localhost"}))
    result = run_step({"name": "get", "type": "http", "url": server.url("/json")}, config)
    assert result.error == 'step "get": host "127.0.0.1" is not in the allowed hosts'
    assert server.requests == []


def test_http_allowlist_entries_may_name_a_port(server: LocalServer) -> None:
    config = engine.EngineConfig(http_allowed_hosts=frozenset({f"127.0.0.1:{server.server_port}"}))
    assert run_step({"name": "get", "type": "http", "url": server.url("/text")}, config).status == "succeeded"
    config = engine.EngineConfig(http_allowed_hosts=frozenset({"127.0.0.1:1"}))
    assert run_step({"name": "get", "type": "http", "url": server.url("/text")}, config).status == "failed"


def test_http_url_from_a_reference_is_checked_at_run_time(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "url": "${inputs.target}"}, target="http://evil.example/")
    assert result.error == 'step "get": host "evil.example" is not in the allowed hosts'


def test_http_follows_redirects_to_allowed_hosts(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "url": server.url("/redirect-local")})
    assert result.outputs["out"]["json"] == {"ok": True, "items": [1, 2]}
    assert [path for _, path, _, _ in server.requests] == ["/redirect-local", "/json"]


def test_http_see_other_turns_post_into_get(server: LocalServer) -> None:
    step = {"name": "post", "type": "http", "method": "POST", "url": server.url("/see-other"), "body": "x"}
    assert run_step(step).status == "succeeded"
    assert [(method, path, body) for method, path, _, body in server.requests] == [
        ("POST", "/see-other", b"x"),
        ("GET", "/json", b""),
    ]


def test_http_redirect_to_disallowed_host_is_rejected(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "url": server.url("/redirect-out")})
    assert result.error == 'step "get": host "evil.example" is not in the allowed hosts'
    assert [path for _, path, _, _ in server.requests] == ["/redirect-out"]


def test_http_redirect_loops_stop(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "url": server.url("/loop")})
    assert result.error == 'step "get": too many redirects (more than 5)'
    assert len(server.requests) == 6


def test_http_unreachable_host_fails_the_step() -> None:
    with socket.socket() as probe:  # bound but never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        result = run_step({"name": "get", "type": "http", "url": f"http://127.0.0.1:{port}/"})
    assert result.status == "failed"
    assert result.error.startswith(f'step "get": GET http://127.0.0.1:{port}/ failed:')


def test_template_substitutes_without_evaluating() -> None:
    template = "{0.__class__} {{7*7}} $x ${inputs.name}: ${inputs.meta.role}"
    result = run_step({"name": "t", "type": "template", "template": template}, name="ada", meta={"role": "admin"})
    assert result.outputs == {"out": "{0.__class__} {{7*7}} $x ada: admin"}


def test_template_output_is_always_a_string() -> None:
    result = run_step({"name": "t", "type": "template", "template": "${inputs.meta}"}, meta={"a": [1]})
    assert result.outputs == {"out": '{"a": [1]}'}


def test_template_attribute_access_is_rejected_or_not_evaluated() -> None:
    with pytest.raises(engine.FlowValidationError, match="has no fields"):
        run_step({"name": "t", "type": "template", "template": "${inputs.name.__class__}"}, name="ada")
    with pytest.raises(engine.FlowValidationError, match="malformed expression"):
        run_step({"name": "t", "type": "template", "template": "${inputs.name.__class__()}"}, name="ada")
    result = run_step({"name": "t", "type": "template", "template": "${inputs.meta.__class__}"}, meta={"a": 1})
    assert result.error == 'step "t": cannot resolve ${inputs.meta.__class__}: no "__class__" in object'


def test_fail_step_uses_its_message() -> None:
    assert run_step({"name": "boom", "type": "fail", "message": "on purpose"}).error == 'step "boom": on purpose'
    assert run_step({"name": "boom", "type": "fail"}).error == 'step "boom": failed'


def test_sleep_step_completes() -> None:
    result = run_step({"name": "nap", "type": "sleep", "seconds": 0.01})
    assert result.status == "succeeded"
    assert result.outputs == {"out": None}


def test_python_step_non_json_output_fails() -> None:
    config = engine.EngineConfig(python_functions={"make_set": lambda: {1, 2}})
    result = run_step({"name": "p", "type": "python", "function": "make_set"}, config)
    assert result.error.startswith('step "p": output is not JSON-serialisable')

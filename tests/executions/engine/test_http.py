"""The http step against real local servers: allowlist and ports, checked addresses, redirects, errors, stops."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from executions import engine
from executions.engine import http
from tests.executions.engine.support import ALLOW_LOCAL, WAIT, Handler, LocalServer, run_step

CREDENTIALS = {
    "Authorization": "Bearer a",
    "Cookie": "c=1",
    "X-Api-Key": "k",
    "X-Auth-Token": "t",
    "Proxy-Authorization": "p",
    "X-Upstream-Secret": "s",
}


def allow(*entries: str, **fields: Any) -> engine.EngineConfig:
    """A config allowing these hosts."""
    return engine.EngineConfig(http_allowed_hosts=frozenset(entries), default_step_timeout=5.0, **fields)


def get(url: str, **fields: Any) -> dict:
    """A GET step."""
    return {"name": "get", "type": "http", "url": url, **fields}


def test_http_json_response(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "method": "GET", "url": server.url("/json")})
    assert result.outputs == {"out": {"status": 200, "json": {"ok": True, "items": [1, 2]}}}


def test_http_text_response(server: LocalServer) -> None:
    result = run_step(get(server.url("/text")))
    assert result.outputs == {"out": {"status": 200, "text": "plain words"}}


def test_http_long_text_is_truncated_with_a_marker(server: LocalServer) -> None:
    server.handlers["/long"] = lambda handler: handler.reply(200, {"Content-Type": "text/plain"}, "x" * 70_000)
    out = run_step(get(server.url("/long"))).outputs["out"]
    assert (len(out["text"]), out["truncated"]) == (http.MAX_TEXT_CHARS, True)


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
    assert headers["Host"] == f"127.0.0.1:{server.server_port}"


def test_http_error_status_is_one_line_with_status_reason_and_excerpt(server: LocalServer) -> None:
    result = run_step(get(server.url("/missing")))
    assert result.status == "failed"
    assert result.error == f'step "get": HTTP 404 Not Found from {server.url("/missing")}: no such thing'


def test_http_error_page_in_html_becomes_a_short_single_line(server: LocalServer) -> None:
    page = "<!DOCTYPE html>\n<html>\n<head><title>Oops</title></head>\n<body>\n<h1>Server Error</h1>\n" + (
        "<p>details</p>\n" * 500
    ) + "</body></html>"
    server.handlers["/broken"] = lambda handler: handler.reply(500, {"Content-Type": "text/html"}, page)
    error = run_step(get(server.url("/broken"))).error
    assert "\n" not in error and "<" not in error
    assert error.startswith(f'step "get": HTTP 500 Internal Server Error from {server.url("/broken")}: Oops Server')
    assert len(error) < 250 and error.endswith("…")


def test_http_disallowed_host_is_rejected_without_a_request(server: LocalServer) -> None:
    result = run_step(get(server.url("/json")), allow("localhost:*"))
    assert result.error == f'step "get": host "127.0.0.1:{server.server_port}" is not in the allowed hosts'
    assert server.requests == []


@pytest.mark.hardening
def test_http_bare_allowlist_host_allows_only_the_default_port(server: LocalServer) -> None:
    result = run_step(get(server.url("/text")), allow("127.0.0.1"))
    assert result.error == f'step "get": host "127.0.0.1:{server.server_port}" is not in the allowed hosts'
    assert server.requests == []
    assert http._matches(http.Entry("127.0.0.1", None), "127.0.0.1", 80, "http")
    assert not http._matches(http.Entry("127.0.0.1", None), "127.0.0.1", 443, "http")
    assert http._matches(http.Entry("127.0.0.1", None), "127.0.0.1", 443, "https")


def test_http_allowlist_entries_may_name_a_port_or_any_port(server: LocalServer) -> None:
    assert run_step(get(server.url("/text")), allow(f"127.0.0.1:{server.server_port}")).status == "succeeded"
    assert run_step(get(server.url("/text")), allow("127.0.0.1:1")).status == "failed"
    assert run_step(get(server.url("/text")), allow("127.0.0.1:*")).status == "succeeded"


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("Example.COM", http.Entry("example.com", None)),
        ("example.com.:8080", http.Entry("example.com", 8080)),
        ("[::1]:8000", http.Entry("::1", 8000)),
        ("::1", http.Entry("::1", None)),
        ("10.0.0.1:*", http.Entry("10.0.0.1", "*")),
    ],
)
def test_allowlist_entries_parse(entry: str, parsed: http.Entry) -> None:
    assert http.parse_allowlist(frozenset({entry})) == (parsed,)


@pytest.mark.parametrize("entry", ["host:http", "host:0", "host:70000", "[::1]x", ":80"])
def test_malformed_allowlist_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        http.parse_allowlist(frozenset({entry}))


def test_localhost_entry_allows_loopback_and_falls_back_across_its_addresses(server: LocalServer) -> None:
    url = f"http://localhost:{server.server_port}/text"
    result = run_step(get(url), allow("localhost:*"))
    assert result.status == "succeeded", result.error
    assert server.requests[0][2]["Host"] == f"localhost:{server.server_port}"


class FakeResolver:
    """Answers for names the tests invent; counts lookups. Everything else resolves for real."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.calls: list[str] = []
        self.real = socket.getaddrinfo

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.calls.append(host)
        address = self.answers[host][min(len(self.calls), len(self.answers[host])) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


@pytest.mark.hardening
def test_a_name_resolving_to_a_private_address_is_refused_unless_the_address_is_named(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http.socket, "getaddrinfo", FakeResolver({"partner.example": ["127.0.0.1"]}))
    url = f"http://partner.example:{server.server_port}/text"
    result = run_step(get(url), allow("partner.example:*"))
    assert result.error == (
        'step "get": host "partner.example" resolves to 127.0.0.1, a non-public address the allowed hosts do not name'
    )
    assert server.requests == []
    assert run_step(get(url), allow("partner.example:*", "127.0.0.1")).status == "succeeded"


@pytest.mark.hardening
@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "192.168.0.1", "0.0.0.0", "::ffff:127.0.0.1"])
def test_private_link_local_and_unspecified_addresses_are_refused(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http.socket, "getaddrinfo", FakeResolver({"inside.example": [address]}))
    error = run_step(get("http://inside.example/"), allow("inside.example")).error
    assert "a non-public address the allowed hosts do not name" in error


@pytest.mark.hardening
def test_the_request_goes_to_the_checked_address_not_a_second_answer(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebinding resolver: first the allowed address, then one that is not.
    resolver = FakeResolver({"rebind.example": ["127.0.0.1", "10.9.9.9"]})
    monkeypatch.setattr(http.socket, "getaddrinfo", resolver)
    url = f"http://rebind.example:{server.server_port}/text"
    result = run_step(get(url), allow("rebind.example:*", "127.0.0.1"))
    assert result.status == "succeeded", result.error
    assert resolver.calls == ["rebind.example"]
    assert server.requests[0][2]["Host"] == f"rebind.example:{server.server_port}"


def test_http_url_from_a_reference_is_checked_at_run_time(server: LocalServer) -> None:
    result = run_step({"name": "get", "type": "http", "url": "${inputs.target}"}, target="http://evil.example/")
    assert result.error == 'step "get": host "evil.example" is not in the allowed hosts'


def test_http_follows_redirects_to_allowed_hosts(server: LocalServer) -> None:
    result = run_step(get(server.url("/redirect-local")))
    assert result.outputs["out"]["json"] == {"ok": True, "items": [1, 2]}
    assert [path for _, path, _, _ in server.requests] == ["/redirect-local", "/json"]


def test_same_origin_redirect_keeps_credentials(server: LocalServer) -> None:
    run_step(get(server.url("/redirect-local"), headers=CREDENTIALS))
    assert CREDENTIALS.items() <= server.requests[1][2].items()


@pytest.mark.hardening
def test_cross_origin_redirect_strips_every_credential_like_header(
    server: LocalServer, other_server: LocalServer
) -> None:
    target = other_server.url("/json")
    server.handlers["/away"] = lambda handler: handler.reply(302, {"Location": target}, "")
    result = run_step(get(server.url("/away"), headers={**CREDENTIALS, "X-Trace-Me": "yes"}))
    assert result.status == "succeeded", result.error
    received = other_server.requests[0][2]
    assert not {name.lower() for name in CREDENTIALS} & {name.lower() for name in received}
    assert received["X-Trace-Me"] == "yes"


def test_http_see_other_turns_post_into_get(server: LocalServer) -> None:
    step = {"name": "post", "type": "http", "method": "POST", "url": server.url("/see-other"), "body": "x"}
    assert run_step(step).status == "succeeded"
    assert [(method, path, body) for method, path, _, body in server.requests] == [
        ("POST", "/see-other", b"x"),
        ("GET", "/json", b""),
    ]


def test_http_redirect_to_disallowed_host_is_rejected(server: LocalServer) -> None:
    result = run_step(get(server.url("/redirect-out")))
    assert result.error == 'step "get": host "evil.example" is not in the allowed hosts'
    assert [path for _, path, _, _ in server.requests] == ["/redirect-out"]


def test_http_redirect_loops_stop(server: LocalServer) -> None:
    result = run_step(get(server.url("/loop")))
    assert result.error == 'step "get": too many redirects (more than 5)'
    assert len(server.requests) == 6


def test_http_unreachable_host_fails_the_step() -> None:
    with socket.socket() as probe:  # bound but never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        result = run_step(get(f"http://127.0.0.1:{port}/"))
    assert result.status == "failed"
    assert result.error.startswith(f'step "get": GET http://127.0.0.1:{port}/ failed:')


def test_http_errors_do_not_show_userinfo_or_sensitive_query_values(server: LocalServer) -> None:
    url = f"http://user:pa55@127.0.0.1:{server.server_port}/missing?token=abc123&page=1"
    error = run_step(get(url)).error
    assert "pa55" not in error and "abc123" not in error and "page=1" in error


def slow_headers(handler: Handler) -> None:
    """Answer only when the test releases the server (or the client goes away)."""
    handler.server.release.wait(30)


def slow_body(handler: Handler) -> None:
    """Send headers at once, then a byte at a time until released; note when the client disconnects."""
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    try:
        while not handler.server.release.wait(0.02):
            handler.wfile.write(b"x")
            handler.wfile.flush()
    except OSError:
        handler.server.disconnected.set()


class CancelOnStart(engine.NullHooks):
    """Cancels the run as soon as the http step starts."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.finished: list[engine.StepOutcome] = []

    def step_started(self, step: engine.StepSpec, attempt: int, started_at: datetime) -> None:
        self.cancel.set()

    def step_finished(self, outcome: engine.StepOutcome) -> None:
        self.finished.append(outcome)

    def is_cancelled(self) -> bool:
        return self.cancel.is_set()


@pytest.mark.parametrize("handler", [slow_headers, slow_body])
def test_cancel_stops_a_running_http_step_within_a_second(server: LocalServer, handler: Any) -> None:
    server.handlers["/slow"] = handler
    server.disconnected = threading.Event()
    hooks = CancelOnStart()
    began = time.monotonic()
    result = run_step(get(server.url("/slow"), timeout=20), hooks=hooks)
    assert time.monotonic() - began < 1.5
    assert result.status == "cancelled"
    assert [(outcome.name, outcome.status) for outcome in hooks.finished] == [("get", "cancelled")]


def test_timeout_stops_the_read_and_closes_the_connection(server: LocalServer) -> None:
    server.handlers["/slow"] = slow_body
    server.disconnected = threading.Event()
    began = time.monotonic()
    result = run_step(get(server.url("/slow"), timeout=0.3))
    assert result.error == 'step "get": timed out after 0.3s'
    assert server.disconnected.wait(WAIT)  # the server saw the connection go away: the work stopped
    assert time.monotonic() - began < 2.0


def test_client_spans_show_no_userinfo_sensitive_query_values_or_secret_inputs(server: LocalServer, spans: Any) -> None:
    secret = "s3cr3t-Pa55"
    document = {
        "name": "leak",
        "inputs": {"api_key": {"type": "string"}},
        "steps": [get(f"http://bob:pw99@127.0.0.1:{server.server_port}/text?key=${{inputs.api_key}}&token=t0k3n")],
    }
    definition = engine.parse(document, config=ALLOW_LOCAL)
    result = engine.run(definition, {"api_key": secret}, config=ALLOW_LOCAL)
    assert result.status == "succeeded", result.error
    assert server.requests[0][1] == f"/text?key={secret}&token=t0k3n"  # the server got the real values
    client = [span for span in spans.all() if span.kind is SpanKind.CLIENT]
    assert len(client) == 1
    shown = repr([dict(span.attributes) for span in spans.all()])
    assert secret not in shown and "pw99" not in shown and "t0k3n" not in shown
    assert client[0].attributes["url.full"].endswith("/text?key=[REDACTED]&token=REDACTED")

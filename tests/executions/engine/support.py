"""Helpers shared by the engine tests: a local HTTP server and a one-step flow runner."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from executions import engine

WAIT = 5.0  # upper bound for every wait in these tests
ALLOW_LOCAL = engine.EngineConfig(http_allowed_hosts=frozenset({"127.0.0.1:*"}), default_step_timeout=5.0)

Route = tuple[int, dict[str, str], str]


class Handler(BaseHTTPRequestHandler):
    """Fixed routes plus per-test ones; every request is recorded on the server."""

    server: LocalServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        if (special := self.server.handlers.get(self.path.partition("?")[0])) is not None:
            special(self)
            return
        routes: dict[str, Route] = {
            "/json": (200, {"Content-Type": "application/json"}, json.dumps({"ok": True, "items": [1, 2]})),
            "/text": (200, {"Content-Type": "text/plain; charset=utf-8"}, "plain words"),
            "/echo": (200, {"Content-Type": "application/json"}, body.decode() or "null"),
            "/missing": (404, {"Content-Type": "text/plain"}, "no such thing"),
            "/redirect-local": (302, {"Location": "/json"}, ""),
            "/see-other": (303, {"Location": "/json"}, ""),
            "/redirect-out": (302, {"Location": "http://evil.example/steal"}, ""),
            "/loop": (302, {"Location": "/loop"}, ""),
        }
        self.reply(*routes.get(self.path.partition("?")[0], (500, {}, "unexpected path")))

    def reply(self, status: int, headers: dict[str, str], text: str) -> None:
        """Send a whole response."""
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
        self.handlers: dict[str, Callable[[Handler], None]] = {}
        self.release = threading.Event()  # set at teardown: slow handlers stop waiting
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"http://127.0.0.1:{self.server_port}{path}"

    def stop(self) -> None:
        """Release slow handlers and shut the server down."""
        self.release.set()
        self.shutdown()
        self.server_close()
        self.thread.join(WAIT)


def run_step(
    step: dict, config: engine.EngineConfig = ALLOW_LOCAL, hooks: Any = None, **inputs: Any
) -> engine.RunResult:
    """Run a one-step flow whose output is the step's output."""
    declared = {name: {"type": "object" if isinstance(value, dict) else "string"} for name, value in inputs.items()}
    document = {
        "name": "one",
        "inputs": declared,
        "steps": [step],
        "outputs": {"out": f"${{steps.{step['name']}.output}}"},
    }
    definition = engine.parse(document, config=config)
    return engine.run(definition, engine.bind_inputs(definition, inputs), config=config, hooks=hooks)

"""Helpers for the CLI package's unit tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flowexec.cli import config, parser


def settings_for(argv: Sequence[str], environ: Mapping[str, str]) -> config.Settings:
    """Settings from argv and an environment without any config file."""
    return config.settings_from_args(parser.build_parser().parse_args(argv), {"HOME": "/nonexistent", **environ})


class AnsweringServer:
    """A local HTTP service answering every POST with one status and body; it keeps each request's headers and body."""

    def __init__(self, status: int, body: bytes = b"") -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        answering = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answering.requests.append((dict(self.headers.items()), received))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.endpoint = f"{self.url}/v1/traces"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@contextmanager
def answering_servers(body: bytes = b"") -> Iterator[Callable[[int], AnsweringServer]]:
    """Make AnsweringServers by status; all are stopped at the end."""
    made: list[AnsweringServer] = []

    def make(status: int = 200) -> AnsweringServer:
        made.append(AnsweringServer(status, body))
        return made[-1]

    try:
        yield make
    finally:
        for each in made:
            each.server.shutdown()
            each.server.server_close()

"""An OTLP/HTTP trace endpoint that accepts every export and drops it: `python -m bench.sink PORT`.

A stand-in for a Collector on 127.0.0.1, so the service's OTLP export path is measured without a
collector's own CPU cost on this small machine. `python -m bench.sink PORT --silent` is a backend
that hangs instead: it accepts connections and never answers (a refused port fails at once).
"""

from __future__ import annotations

import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    """200 with an empty ExportTraceServiceResponse for every POST."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per export would be most of the work."""


def silent(port: int) -> None:
    """Accept and hold every connection without reading or answering, until killed."""
    held = []
    with socket.create_server(("127.0.0.1", port), backlog=128) as listener:
        print("listening", flush=True)
        while True:
            held.append(listener.accept()[0])


def main() -> None:
    if "--silent" in sys.argv[2:]:
        silent(int(sys.argv[1]))
        return
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

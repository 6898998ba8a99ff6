"""Drive a long-lived child process that answers JSON-line commands on stdin with `BENCH {...}` lines."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from bench.core import ROOT

PREFIX = "BENCH "


class Worker:
    """One child (in-process flowexec or Prefect) that runs batches on command, so A/B batches alternate."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str], log_dir: Path,
                 ready_timeout: float = 120) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self._reply(ready_timeout)

    def _read(self) -> None:
        for line in self.popen.stdout:
            if line.startswith(PREFIX):
                self._lines.put(line[len(PREFIX):])
        self._lines.put(None)

    def _reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no answer within {timeout:.0f}s; log {self.log_path}") from None
        if line is None:
            tail = self.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{self.name} exited ({self.popen.wait()}):\n{tail}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def call(self, op: str, *, timeout: float = 600, **arguments: Any) -> dict[str, Any]:
        self.popen.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.popen.stdin.flush()
        return self._reply(timeout)

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.stdin.close()
                self.popen.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()


def reply(payload: dict[str, Any]) -> None:
    """Answer the parent (used inside the children)."""
    print(PREFIX + json.dumps(payload), flush=True)

"""The processes the benchmarks drive: a prepared database, gunicorn with the shipped config, an OTLP sink, wrk."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

from bench.core import PYTHON, ROOT, child_env, free_port, wait_for

GUNICORN_CONF = ROOT / "flowexec" / "gunicorn.conf.py"


@dataclass(frozen=True)
class Database:
    """A migrated SQLite file with the bench flows and a token; copied for every process that needs its own."""

    path: Path
    token: str

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def copy(self, target: Path) -> Database:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, target)
        return Database(target, self.token)


def prepare_database(path: Path) -> Database:
    """Migrate a fresh SQLite file and fill it (bench.prepare), production settings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([PYTHON, "-m", "bench.prepare"], cwd=ROOT, capture_output=True, text=True,
                            env=child_env(DATABASE_URL=f"sqlite:///{path}", OTEL_SDK_DISABLED="true"), timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"preparing {path} failed:\n{result.stdout}\n{result.stderr}")
    return Database(path, result.stdout.strip().splitlines()[-1])


@dataclass
class Process:
    """A child process with its log file, stopped with SIGTERM (then SIGKILL) by `stop`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-4000:]}")
        return True

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def spawn(name: str, command: list[str], *, env: dict[str, str], log_dir: Path) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Process(name, popen, log_path)


@dataclass
class Server:
    """The service under gunicorn with flowexec/gunicorn.conf.py (its worker count and class), on 127.0.0.1."""

    name: str
    database: Database
    process: Process
    url: str
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False, maxsize=16))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.database.token}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict) -> dict:
        response = self.http.request("POST", self.url + path, body=json.dumps(body).encode(),
                                     headers=self.headers, timeout=60)
        if response.status not in (200, 201, 202):
            raise RuntimeError(f"{self.name}: POST {path} -> {response.status} {response.data[:500]!r}")
        return json.loads(response.data)

    def get(self, path: str) -> dict:
        response = self.http.request("GET", self.url + path, headers=self.headers, timeout=60)
        if response.status != 200:
            raise RuntimeError(f"{self.name}: GET {path} -> {response.status} {response.data[:500]!r}")
        return json.loads(response.data)

    def workers(self) -> int:
        return len(re.findall(r"Booting worker with pid", self.process.log()))

    def stop(self) -> None:
        self.process.stop()


def start_server(name: str, database: Database, *, log_dir: Path, env: dict[str, str] | None = None) -> Server:
    """Start gunicorn on a free port and wait for /healthz; the bind is the only setting given on its command line."""
    port = free_port()
    command = [PYTHON, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}", "flowexec.wsgi"]
    process_env = child_env(DATABASE_URL=database.url, **(env or {}))
    process = spawn(name, command, env=process_env, log_dir=log_dir)
    server = Server(name, database, process, f"http://127.0.0.1:{port}")

    def healthy() -> bool:
        process.alive()
        try:
            return server.http.request("GET", server.url + "/healthz", timeout=1).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    try:
        wait_for(healthy, timeout=90, what=f"gunicorn {name} on port {port}")
        # Every worker warm (imports, first connection) before anything is timed.
        for _ in range(4 * max(1, server.workers())):
            server.post("/api/executions/", {"flow": "bench-two", "inputs": {"name": "warm"}})
    except BaseException:
        process.stop()
        raise
    return server


def start_sink(*, log_dir: Path, silent: bool = False) -> tuple[Process, str]:
    """An OTLP/HTTP endpoint on 127.0.0.1 that drops spans (or, silent, never answers); it and its traces URL."""
    port = free_port()
    command = [PYTHON, "-m", "bench.sink", str(port), *(["--silent"] if silent else [])]
    process = spawn("otlp-silent" if silent else "otlp-sink", command, env=child_env(), log_dir=log_dir)
    wait_for(lambda: process.alive() and "listening" in process.log(), timeout=30, what="the OTLP sink")
    return process, f"http://127.0.0.1:{port}/v1/traces"


# --- wrk --------------------------------------------------------------------------------------------

POST_LUA = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token %s"
"""
GET_LUA = """
wrk.headers["Authorization"] = "Token %s"
"""
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Load:
    """What one wrk run measured: requests/s and latency percentiles in ms."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


def _lua(script: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, prefix="bench-") as handle:
        handle.write(script)
    return handle.name


def post_script(token: str, body: dict) -> str:
    return _lua(POST_LUA % (json.dumps(json.dumps(body)), token))


def get_script(token: str) -> str:
    return _lua(GET_LUA % token)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(url: str, script: str, *, seconds: int, connections: int, timeout: int = 10) -> Load:
    """Load `url` (127.0.0.1 only) for `seconds`; any non-2xx answer or socket error fails the measurement."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load only ever targets 127.0.0.1, not {url}")
    result = subprocess.run(
        ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "--timeout", f"{timeout}s",
         "--latency", "-s", script, url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    out = result.stdout
    failures = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.+)", out)
    if failures or sockets:
        raise RuntimeError(f"wrk {url}: failed requests\n{out}")
    latency = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.MULTILINE))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    if not requests or set(latency) != {"50", "99"}:
        raise RuntimeError(f"wrk {url}: no request completed\n{out}")
    return Load(rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                p50_ms=_ms(latency["50"]), p99_ms=_ms(latency["99"]), requests=requests)

"""Start the real service (runserver or gunicorn) as a subprocess with its own database."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "flows"
_template: dict[str, str] = {}
_numbers = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.05, message: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def base_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without OTEL_* (each process configures its own), plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"DJANGO_DEBUG": "1", "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "flowexec.settings"})
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


def _database_for(directory: Path) -> str:
    """A fresh, migrated database with the example flows and a demo user; its DATABASE_URL."""
    postgres = _postgres_url()
    if postgres:
        return _postgres_database(postgres)
    if "sqlite" not in _template:
        template = Path(tempfile.gettempdir()) / f"flowexec-live-{uuid.uuid4().hex}.sqlite3"
        _prepare(f"sqlite:///{template}")
        _template["sqlite"] = str(template)
    target = directory / "db.sqlite3"
    shutil.copyfile(_template["sqlite"], target)
    return f"sqlite:///{target}"


def _postgres_database(url: str) -> str:
    import psycopg

    base = url.rsplit("/", 1)[0]
    template = f"flowexec_live_template_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        if "postgres" not in _template:
            conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
            conn.execute(f'CREATE DATABASE "{template}"')
            _prepare(f"{base}/{template}")
            _template["postgres"] = template
        name = f"flowexec_live_{os.getpid()}_{next(_numbers)}"
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return f"{base}/{name}"


def _prepare(database_url: str) -> None:
    env = base_env(DATABASE_URL=database_url, OTEL_SDK_DISABLED="true")
    manage("migrate", "--noinput", env=env)
    manage("loadflows", str(EXAMPLES), env=env)
    _template["token"] = manage("createdemo", env=env).strip()


@dataclass
class LiveService:
    """A running service: where it listens, its token, the environment it was started with."""

    url: str
    token: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    database_url: str
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def client_env(self, **overrides: str) -> dict[str, str]:
        """Environment for a CLI subprocess talking to this service."""
        return base_env(FLOWEXEC_URL=self.url, FLOWEXEC_TOKEN=self.token, **overrides)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_service(
    directory: Path,
    *,
    env: dict[str, str] | None = None,
    server: str = "runserver",
    workers: int = 2,
    database_url: str | None = None,
    launcher: bool = False,
) -> LiveService:
    """Start the service on a free port and wait until /healthz answers.

    On `database_url`, or a fresh database; under opentelemetry-instrument if `launcher`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    database_url = database_url or _database_for(directory)
    port = free_port()
    server_env = base_env(DATABASE_URL=database_url, **(env or {}))
    if server == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "flowexec" / "gunicorn.conf.py"),
                   "flowexec.wsgi"]
        server_env.update(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS=str(workers))
    else:
        command = [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"]
    if launcher:
        command = [str(Path(sys.executable).parent / "opentelemetry-instrument"), *command]
    log_path = directory / f"{server}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT)
    service = LiveService(
        url=f"http://127.0.0.1:{port}", token=_template["token"], env=server_env, process=process,
        log_path=log_path, database_url=database_url,
    )

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{server} exited with {process.returncode}:\n{service.log()}")
        try:
            return service.http.request("GET", service.url + "/healthz", timeout=1).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=60, message=f"{server} on port {port}")
    except AssertionError:
        service.stop()
        raise
    return service


def require_service(host: str, port: int, name: str) -> None:
    """Skip (or fail, under FLOWEXEC_REQUIRE_SERVICES=1) when a backing service is not listening."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if os.environ.get("FLOWEXEC_REQUIRE_SERVICES") == "1":
            pytest.fail(message + "; FLOWEXEC_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(message)

"""What every benchmark shares: spreads and ratios, result rows, child environments, tools, the machine."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
SECRET_KEY = "bench-only-secret-key-not-for-production-0123456789abcdef"
APT_TOOLS = {"wrk": "wrk", "hyperfine": "hyperfine", "valgrind": "valgrind"}
PIP_TOOLS = {"pyinstrument": "pyinstrument>=5,<6"}


@dataclass(frozen=True)
class Spread:
    """Median and min-max of repeated measurements (rounds or samples)."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        items = sorted(values)
        if not items:
            raise ValueError("no measurements")
        return cls(statistics.median(items), items[0], items[-1], len(items))

    def text(self, digits: int = 2, unit: str = "") -> str:
        number = f"{{:.{digits}f}}"
        return f"{number.format(self.median)}{unit} ({number.format(self.low)} - {number.format(self.high)})"


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """Per-round ratios of two series measured in the same rounds."""
    return Spread.of(a / b for a, b in zip(numerators, denominators, strict=True) if b)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 800 samples is the 792nd smallest)."""
    items = sorted(values)
    if not items:
        raise ValueError("no samples")
    rank = max(1, min(len(items), round(fraction * len(items) + 0.5)))
    return items[rank - 1]


@dataclass
class Row:
    """One line of the results table: what was measured, its median (min-max), other figures, the target."""

    what: str
    figures: str
    value: Spread | None = None
    target: str = ""
    digits: int = 2

    def value_text(self) -> str:
        return self.value.text(self.digits) if self.value else "—"


@dataclass
class Section:
    """The outcome of one benchmark: rows for the table, notes, and the raw series they came from."""

    name: str
    title: str
    command: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    commit: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Section:
        rows = [Row(**{**row, "value": Spread(**row["value"]) if row.get("value") else None})
                for row in data.get("rows", [])]
        return cls(**{**data, "rows": rows})


@dataclass(frozen=True)
class Scale:
    """How much of everything to do: the full run, --quick, or the test suite's --smoke."""

    rounds: int
    seconds: int
    batch: int
    cli_runs: int
    async_clients: int
    async_per_client: int
    row_counts: tuple[int, ...]
    prefect: bool
    smoke: bool = False


FULL = Scale(rounds=5, seconds=8, batch=60, cli_runs=5, async_clients=8, async_per_client=100,
             row_counts=(10_000, 100_000, 1_000_000), prefect=True)
QUICK = Scale(rounds=3, seconds=5, batch=36, cli_runs=3, async_clients=8, async_per_client=100,
              row_counts=(10_000, 100_000), prefect=True)
SMOKE = Scale(rounds=1, seconds=1, batch=3, cli_runs=2, async_clients=2, async_per_client=3,
              row_counts=(200, 1_000), prefect=False, smoke=True)


def child_env(**overrides: str) -> dict[str, str]:
    """A production-settings environment for a child process: no inherited OTEL_*/FLOWEXEC_*/DJANGO_* variables."""
    inherited = ("OTEL_", "FLOWEXEC_", "DJANGO_", "DATABASE_", "GUNICORN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        PYTHONUNBUFFERED="1",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_SETTINGS_MODULE="bench.settings",
        FLOWEXEC_LOG_LEVEL="WARNING",
        # Plain HTTP on loopback, as behind a TLS-terminating proxy that does the redirect itself.
        DJANGO_SECURE_SSL_REDIRECT="0",
        # The API's per-user throttle stays on (its cost is measured) but far above any rate wrk reaches.
        FLOWEXEC_THROTTLE_USER="1000000/second",
    )
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; SystemExit naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def ensure_tools(*, smoke: bool) -> None:
    """Install wrk and hyperfine (Debian) and pyinstrument (PyPI, into this venv) when missing."""
    missing = [package for tool, package in APT_TOOLS.items() if not shutil.which(tool)]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", flush=True)
        apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
        subprocess.run([*apt, "update", "-qq"], check=False, timeout=600)
        subprocess.run([*apt, "install", "-y", "-qq", *missing], check=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    for module, requirement in PIP_TOOLS.items():
        if importlib.util.find_spec(module) is None:
            print(f"installing {requirement} into {sys.prefix}", flush=True)
            subprocess.run([PYTHON, "-m", "pip", "install", "-q", requirement], check=True, timeout=600)


def _output(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else "?"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _memory() -> str:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return "unknown"
    match = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
    return f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else "unknown"


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """Where and with what this run measured."""
    import sqlite3

    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "Django": _version("Django"),
        "djangorestframework": _version("djangorestframework"),
        "gunicorn": _version("gunicorn"),
        "celery": _version("celery"),
        "opentelemetry-sdk": _version("opentelemetry-sdk"),
        "opentelemetry-instrumentation-django": _version("opentelemetry-instrumentation-django"),
        "pyinstrument": _version("pyinstrument"),
        "wrk": _output(["wrk", "-v"]),
        "hyperfine": _output(["hyperfine", "--version"]),
        "redis-server": _output(["redis-server", "--version"]),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def git_commit() -> str:
    result = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False)
    # The bench's own outputs do not count as changes to what was measured.
    outputs = [f":!bench/{name}" for name in ("RESULTS.md", "results.json", "profile-inprocess.txt")]
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
                            *outputs], capture_output=True, text=True, check=False).stdout.strip()
    return result.stdout.strip() + ("+changes" if dirty else "")

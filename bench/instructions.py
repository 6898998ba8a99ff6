"""Instructions per execution on the executing thread, counted by callgrind: traced / untraced without the noise.

Wall time on a shared 2-core machine moves 10-20% between rounds; an instruction count does not (PYTHONHASHSEED
fixed: under 0.5% from run to run). Each side is two processes under `valgrind --tool=callgrind
--separate-threads=yes`: one runs the warm-up only, the other the warm-up and `count` more executions; the
difference of their main threads' counts, divided by `count`, is what one execution costs the thread that runs
it. Span export happens on the BatchSpanProcessor's own thread and is reported apart.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.core import PYTHON
from bench.worker import Worker

WARM_UP = 30

Environment = Callable[[str], dict[str, str]]


@dataclass(frozen=True)
class Count:
    """Instructions per execution: on the executing (main) thread, and on all threads together."""

    main: float
    total: float


def available() -> bool:
    return shutil.which("valgrind") is not None


def _thread_totals(prefix: Path) -> dict[str, int]:
    """Thread number -> instructions, from callgrind's per-thread files PREFIX-01, PREFIX-02, ..."""
    totals = {}
    for path in prefix.parent.glob(f"{prefix.name}-*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                totals[path.name.rsplit("-", 1)[1]] = int(line.split()[1])
                break
    return totals


def _counted(name: str, environment: Environment, workdir: Path, count: int) -> dict[str, int]:
    prefix = workdir / f"callgrind.{name}"
    # A reused --workdir may hold an earlier run's files, some for threads this run does not start.
    for stale in prefix.parent.glob(f"{prefix.name}-*"):
        stale.unlink()
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={prefix}",
               PYTHON, "-m", "bench.inprocess_worker"]
    env = {**environment(name), "PYTHONHASHSEED": "0"}
    worker = Worker(name, command, env=env, log_dir=workdir / "logs", ready_timeout=900)
    try:
        worker.call("untimed", count=WARM_UP, timeout=900)
        if count:
            worker.call("untimed", count=count, timeout=1800)
    finally:
        worker.stop(timeout=600)  # callgrind writes its counts at exit
    totals = _thread_totals(prefix)
    if "01" not in totals:
        raise RuntimeError(f"{name}: callgrind wrote no counts for the main thread; log {worker.log_path}")
    return totals


def per_execution(name: str, environment: Environment, workdir: Path, count: int) -> Count:
    """Instructions one execution costs, from a warm-up-only run and a warm-up + `count` run side by side.

    `environment(process_name)` is each child's environment (its own database copy).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        base = pool.submit(_counted, f"{name}-0", environment, workdir, 0)
        more = pool.submit(_counted, f"{name}-{count}", environment, workdir, count)
        base_totals, more_totals = base.result(), more.result()
    main = (more_totals["01"] - base_totals["01"]) / count
    total = (sum(more_totals.values()) - sum(base_totals.values())) / count
    return Count(main, total)

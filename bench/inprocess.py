"""In-process cost of one execution (the runflow path: inline submission): traced, untraced, with metrics, Prefect 3."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench import instructions
from bench.core import BENCH, PYTHON, ROOT, Row, Scale, Section, Spread, child_env, percentile, ratios
from bench.stack import Database, prepare_database
from bench.worker import Worker

PREFECT_VENV = BENCH / ".prefect-venv"
PREFECT_REQUIREMENT = "prefect>=3.4,<4"
PROFILE_TEXT = BENCH / "profile-inprocess.txt"
TARGET_TRACED_MS = 3.0
AIM_TRACED_MS = 1.2
FINE_ROUNDS_PER_ROUND = 6
PREFECT_RUNS_PER_ROUND = 3
INSTRUCTION_COUNT = 300


def prefect_python() -> tuple[Path | None, str]:
    """bench/.prefect-venv with Prefect 3 (created on first use); (python, "") or (None, why not)."""
    python = PREFECT_VENV / "bin" / "python"
    check = [str(python), "-c", "import prefect; assert prefect.__version__.startswith('3.')"]
    if python.exists() and subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return python, ""
    print(f"installing {PREFECT_REQUIREMENT} into {PREFECT_VENV} (once)", flush=True)
    try:
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
        subprocess.run([base, "-m", "venv", str(PREFECT_VENV)], check=True, timeout=300, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PREFECT_REQUIREMENT],
                       check=True, timeout=900, capture_output=True)
        subprocess.run(check, check=True, timeout=120, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"Prefect could not be installed here: {exc} {detail.decode(errors='replace')[-300:]}"
    return python, ""


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _prefect_env(workdir: Path) -> dict[str, str]:
    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in child_env().items() if not k.startswith("PREFECT_")}
    # No API URL: Prefect's temporary local server; nothing leaves the machine.
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    env.pop("PYTHONPATH", None)
    return env


def _instruction_rows(database: Database, workdir: Path, count: int) -> list[Row]:
    """Callgrind's instructions per execution, untraced and traced: the tracing ratio without the machine's noise."""
    def environment(**env: str) -> instructions.Environment:
        def for_process(name: str) -> dict[str, str]:
            copy = database.copy(workdir / f"{name}.sqlite3")
            return child_env(DJANGO_SETTINGS_MODULE="flowexec.settings", DATABASE_URL=copy.url, **env)
        return for_process

    untraced = instructions.per_execution("untraced", environment(OTEL_SDK_DISABLED="true"), workdir, count)
    traced = instructions.per_execution("traced", environment(), workdir, count)
    ratio = traced.main / untraced.main

    def figures(counted: instructions.Count) -> str:
        return f"{counted.main / 1e6:.3f} M on the executing thread; {counted.total / 1e6:.3f} M on all threads"

    return [
        Row(f"instructions per execution, untraced (callgrind, {count} executions)", figures(untraced), None),
        Row("instructions per execution, traced (span export on the processor's thread)", figures(traced), None),
        Row("traced / untraced instructions, executing thread", f"+{(traced.main - untraced.main) / 1e3:.0f} k per "
            "execution", Spread(ratio, ratio, ratio, 1), "<= 1.10"),
    ]


def run(scale: Scale, workdir: Path) -> Section:
    section = Section("inprocess",
                      "In-process: one execution of a two-`template`-step flow (submission.execution_submit, inline)")
    database = prepare_database(workdir / "inprocess" / "template.sqlite3")
    logs = workdir / "logs"
    command = [PYTHON, "-m", "bench.inprocess_worker"]

    def start(name: str, **env: str) -> Worker:
        copy = database.copy(workdir / "inprocess" / f"{name}.sqlite3")
        return Worker(name, command, env=child_env(DJANGO_SETTINGS_MODULE="flowexec.settings",
                                                    DATABASE_URL=copy.url, **env), log_dir=logs)

    # "metrics": traced, plus the flow metrics recorded on every execution; the export interval is longer
    # than the run, so what is measured is the recording on the execution's path, not the exporting.
    workers = {
        "untraced": start("untraced", OTEL_SDK_DISABLED="true"),
        "traced": start("traced"),
        "metrics": start("metrics", OTEL_METRICS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="3600000",
                         OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="http://127.0.0.1:9/v1/metrics"),
        "content": start("content", FLOWEXEC_RECORD_CONTENT="1"),
    }
    prefect: Worker | None = None
    try:
        described = {name: worker.ready["tracing"].split(" sampler=")[0] for name, worker in workers.items()}
        section.notes.append(f"traced child: {described['traced']}; untraced child: {described['untraced']}")
        if scale.prefect:
            python, why = prefect_python()
            if python is None:
                section.notes.append(why)
            else:
                prefect = Worker("prefect", [str(python), str(BENCH / "prefect_worker.py")],
                                 env=_prefect_env(workdir), log_dir=logs)
                first = prefect.call("run", count=1, timeout=300)["seconds"][0]
                section.raw["prefect_first_run_s"] = first
                section.notes.append(f"{prefect.ready['tracing']}: first run {first:.1f} s (starts its temporary "
                                     "local server), then warm runs alternate with flowexec's batches")
        for worker in workers.values():
            worker.call("run", count=max(3, scale.batch // 4))
        # Short A/B batches, many of them: a pair measured seconds apart shares the machine's load.
        fine_rounds = max(1, scale.rounds * FINE_ROUNDS_PER_ROUND)
        batch = max(1, scale.batch // FINE_ROUNDS_PER_ROUND)
        series: dict[str, list[float]] = {"untraced": [], "traced": [], "metrics": [], "content": [], "prefect": [],
                                          "traced_block": []}
        samples: dict[str, list[float]] = {"untraced": [], "traced": [], "metrics": [], "content": [], "prefect": []}
        for block in range(scale.rounds):
            if prefect:
                # Prefect's warm run costs about a second: fewer, each beside a block of flowexec rounds.
                seconds = prefect.call("run", count=PREFECT_RUNS_PER_ROUND, timeout=600)["seconds"]
                samples["prefect"] += [s * 1000 for s in seconds]
                series["prefect"].append(statistics.median(s * 1000 for s in seconds))
            block_traced: list[float] = []
            for fine in range(fine_rounds // scale.rounds or 1):
                order = ["untraced", "traced", "metrics", "content"]
                shift = (block + fine) % len(order)
                names = order[shift:] + order[:shift]
                for name in names:
                    milliseconds = [s * 1000 for s in workers[name].call("run", count=batch)["seconds"]]
                    samples[name] += milliseconds
                    series[name].append(statistics.median(milliseconds))
                    if name == "traced":
                        block_traced += milliseconds
            series["traced_block"].append(statistics.median(block_traced))
        section.raw.update(per_round_median_ms=series)
        untraced, traced = series["untraced"], series["traced"]
        p99 = {name: percentile(values, 0.99) for name, values in samples.items() if values}
        low = {name: min(values) for name, values in samples.items() if values}
        section.rows += [
            Row("ms per execution, untraced (OTEL_SDK_DISABLED)",
                f"fastest {low['untraced']:.2f} ms, p99 {p99['untraced']:.2f} ms", Spread.of(untraced), ""),
            Row("ms per execution, traced (store exporter, as runflow)",
                f"fastest {low['traced']:.2f} ms, p99 {p99['traced']:.2f} ms", Spread.of(traced),
                f"<= {TARGET_TRACED_MS} ms (aim {AIM_TRACED_MS})"),
            Row("traced / untraced", f"{statistics.median(traced):.2f} vs {statistics.median(untraced):.2f} ms; "
                f"fastest {low['traced'] / low['untraced']:.2f}", ratios(traced, untraced), "<= 1.10"),
            Row("traced + flow metrics recorded / traced", f"{statistics.median(series['metrics']):.2f} vs "
                f"{statistics.median(traced):.2f} ms", ratios(series["metrics"], traced), "nothing measurable"),
            Row("traced + step content recorded (FLOWEXEC_RECORD_CONTENT=1) / traced",
                f"{statistics.median(series['content']):.2f} vs {statistics.median(traced):.2f} ms",
                ratios(series["content"], traced), ""),
        ]
        if prefect:
            section.rows += [
                Row("Prefect 3 warm flow run, 2 tasks (ms)", f"p99 {p99['prefect']:.0f} ms",
                    Spread.of(series["prefect"]), "", digits=0),
                Row("Prefect warm run / flowexec traced execution", "how many times cheaper flowexec is",
                    ratios(series["prefect"], series["traced_block"]), ">= 400 (aim 1000)", digits=0),
            ]
        rounds = f"rounds: {len(traced)} of {batch} executions per side" + (
            f" (Prefect: {scale.rounds} of {PREFECT_RUNS_PER_ROUND})" if prefect else "")
        section.rows.append(Row(rounds, "cells: median and (min - max) of per-round medians", None))
        counter = start("statements", OTEL_SDK_DISABLED="true", BENCH_COUNT_SQL="1")
        try:
            statements = counter.call("statements", count=max(3, scale.batch // 4))["per_execution"]
        finally:
            counter.stop()
        section.rows.append(Row("SQL statements per execution, untraced (BEGIN/COMMIT included, all threads)",
                                f"{statements:.1f}", None))
        section.raw["statements_per_execution"] = statements
        if scale.smoke:
            section.notes.append("instruction counts (callgrind): full and --quick runs only")
        elif not instructions.available():
            section.notes.append("instruction counts skipped: valgrind is not installed")
        else:
            section.rows += _instruction_rows(database, workdir / "inprocess", INSTRUCTION_COUNT)
        # The HTML is large and machine-specific: bench/out/ is gitignored; the text profile is committed.
        html = workdir / "profile-inprocess.html" if scale.smoke else BENCH / "out" / "profile-inprocess.html"
        html.parent.mkdir(parents=True, exist_ok=True)
        text = workdir / "profile-inprocess.txt" if scale.smoke else PROFILE_TEXT
        workers["traced"].call("profile", count=max(5, scale.batch * 2), html=str(html), text=str(text))
        section.notes.append(f"pyinstrument profile of {max(5, scale.batch * 2)} traced executions (main thread): "
                             f"{_shown(text)}, HTML in {_shown(html)}")
    finally:
        for worker in [*workers.values(), *([prefect] if prefect else [])]:
            worker.stop()
    return section

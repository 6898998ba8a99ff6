"""CLI wall time (hyperfine): a traced `flowexec run` vs an untraced one-shot urllib3 POST, and a dead trace backend."""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
from pathlib import Path

from bench import flows
from bench.core import BENCH, PYTHON, ROOT, Row, Scale, Section, Spread, child_env, free_port, ratios
from bench.stack import prepare_database, start_server, start_sink


def _relative(path: Path) -> str:
    """Commands run from the repository root: show them as anyone would type them there."""
    try:
        return shlex.quote(str(path.relative_to(ROOT)))
    except ValueError:
        return shlex.quote(str(path))


def _flowexec() -> str:
    script = Path(PYTHON).parent / "flowexec"
    return _relative(script) if script.exists() else f"{_relative(Path(PYTHON))} -m flowexec.cli"


def run(scale: Scale, workdir: Path) -> Section:
    section = Section("cli", "CLI: wall time of one run against the local service (hyperfine)")
    logs = workdir / "logs"
    database = prepare_database(workdir / "template.sqlite3")
    server = start_server("store", database.copy(workdir / "store.sqlite3"), log_dir=logs)
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"
    hung, hung_url = start_sink(log_dir=logs, silent=True)
    cli = _flowexec()
    python = _relative(Path(PYTHON))
    run_flow = f"{cli} run {flows.TWO} --input name={flows.INPUTS['name']}"
    commands = {
        "import urllib3": f"{python} -c 'import urllib3'",
        "flowexec --help": f"{cli} --help",
        "urllib3 one-shot POST": f"{python} {_relative(BENCH / 'oneshot.py')}",
        "flowexec run, traced": run_flow,
        "flowexec run, OTEL_SDK_DISABLED": f"OTEL_SDK_DISABLED=true {run_flow}",
        "flowexec run, trace backend down": (f"OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={dead} "
                                             f"{run_flow}"),
        "flowexec run, trace backend hung": (f"OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={hung_url} "
                                             f"{run_flow}"),
    }
    env = child_env(FLOWEXEC_URL=server.url, FLOWEXEC_TOKEN=database.token)
    # The CLI as installed: pip compiles a package's bytecode at install time (and an editable checkout writes it
    # on its first run), so no run compiles the CLI's sources. Where PYTHONDONTWRITEBYTECODE is set, as on these
    # machines, every run of the checkout would otherwise compile them again (~20% of a run's CPU), while the
    # one-shot POST imports only installed, compiled packages.
    subprocess.run([PYTHON, "-m", "compileall", "-q", "flowexec", "tracing"], cwd=ROOT, env=env, check=True,
                   timeout=300, capture_output=True)
    medians: dict[str, list[float]] = {name: [] for name in commands}
    try:
        # Twice the rounds of few runs each: a command's runs stay close in time to the others'.
        rounds = scale.rounds * 2 if not scale.smoke else scale.rounds
        for round_number in range(rounds):
            names = list(commands)
            shift = round_number % len(names)
            names = names[shift:] + names[:shift]
            export = workdir / f"hyperfine-{round_number}.json"
            subprocess.run(
                ["hyperfine", "--warmup", "1", "--runs", str(scale.cli_runs), "--style", "none",
                 "--export-json", str(export), *(part for name in names for part in ("-n", name, commands[name])),
                 ], env=env, cwd=ROOT, check=True, timeout=900, capture_output=True,
            )
            for result in json.loads(export.read_text())["results"]:
                medians[result["command"]].append(result["median"])
            print(f"  round {round_number + 1}: " + ", ".join(f"{n} {medians[n][-1] * 1000:.0f} ms" for n in commands),
                  flush=True)
    finally:
        server.stop()
        hung.stop()

    def ms(name: str) -> str:
        return f"{statistics.median(medians[name]) * 1000:.0f} ms"

    added = [dead_s - traced for dead_s, traced in zip(medians["flowexec run, trace backend down"],
                                                     medians["flowexec run, traced"], strict=True)]
    hung_added = [hung_s - traced for hung_s, traced in zip(medians["flowexec run, trace backend hung"],
                                                          medians["flowexec run, traced"], strict=True)]
    section.raw = medians
    section.rows += [
        Row("traced `flowexec run` / untraced urllib3 one-shot POST",
            f"{ms('flowexec run, traced')} vs {ms('urllib3 one-shot POST')}",
            ratios(medians["flowexec run, traced"], medians["urllib3 one-shot POST"]), "<= 1.6"),
        Row("`flowexec run` with OTEL_SDK_DISABLED / one-shot POST",
            f"{ms('flowexec run, OTEL_SDK_DISABLED')} vs {ms('urllib3 one-shot POST')}",
            ratios(medians["flowexec run, OTEL_SDK_DISABLED"], medians["urllib3 one-shot POST"]), ""),
        Row("dead trace backend (port refused): seconds added to a traced run",
            f"{ms('flowexec run, trace backend down')} in all", Spread.of(added), "<= 0.5 s"),
        Row("hung trace backend (accepts, never answers): seconds added",
            f"{ms('flowexec run, trace backend hung')} in all", Spread.of(hung_added), "<= 0.5 s"),
        Row("`flowexec --help` / `python -c 'import urllib3'`",
            f"{ms('flowexec --help')} vs {ms('import urllib3')}",
            ratios(medians["flowexec --help"], medians["import urllib3"]), "~1 (keep)"),
    ]
    section.notes += [
        "the CLI's bytecode compiled first (`python -m compileall flowexec tracing`), as pip does at install",
        f"hyperfine --warmup 1 --runs {scale.cli_runs} per command, {rounds} rounds "
        "(the command order rotating); "
        "a cell is the median over rounds of each round's median",
        f"the service: gunicorn, shipped config, tracing to the embedded store; the traced CLI exports its spans to "
        f"its /v1/traces (the default); the request: flow `{flows.TWO}`, inputs {flows.INPUTS}",
        "commands: " + "; ".join(f"{name}: `{command}`" for name, command in commands.items()),
    ]
    return section

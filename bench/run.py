"""Run the whole benchmark suite and print one table; results go to bench/RESULTS.md (and results.json).

    .venv/bin/python bench/run.py              everything (about 25 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick      fewer rounds, no 1M-row read
    .venv/bin/python bench/run.py --only service,cli    some sections (others keep their last results)
    .venv/bin/python bench/run.py --smoke      a tiny run for the test suite; writes only under --workdir

Installs wrk and hyperfine (apt-get) and pyinstrument (pip, this venv) when missing, and Prefect 3
into bench/.prefect-venv. Every figure is measured side by side in this run: A and B alternate in
rounds, and the table shows the median with the min-max over rounds. Load only targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report
from bench.core import BENCH, FULL, QUICK, SMOKE, Scale, Section, ensure_tools, git_commit, load_average, machine

SectionRunner = Callable[[Scale, Path], Section]


def sections() -> dict[str, SectionRunner]:
    from bench import asyncq, cli, inprocess, scale, service

    return {"inprocess": inprocess.run, "service": service.run, "cli": cli.run, "async": asyncq.run,
            "scale": scale.run}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer rounds, shorter loads, no 1M-row case")
    size.add_argument("--smoke", action="store_true", help="tiny run that only checks the bench works")
    parser.add_argument("--only", default="", help=f"comma list of sections: {','.join(sections())}")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, databases)")
    args = parser.parse_args()
    # SIGTERM unwinds like an exception, so every section's `finally` stops the servers it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    scale = SMOKE if args.smoke else QUICK if args.quick else FULL
    runners = sections()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(runners)
    unknown = set(chosen) - set(runners)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="flowexec-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results_dir = workdir if args.smoke else BENCH
    ensure_tools(smoke=args.smoke)
    command = "bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    host = machine()
    failed = []
    done: list[Section] = []
    print(f"workdir {workdir}; sections {', '.join(chosen)}", flush=True)
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        load = load_average()
        begun = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        try:
            section = runners[name](scale, workdir / name)
        except Exception as exc:
            section = Section(name, name, notes=[f"FAILED: {type(exc).__name__}: {exc}"[:3000]])
            failed.append(name)
        section.command = f".venv/bin/python {command.strip()}"
        section.date = begun
        section.commit = git_commit()
        section.seconds = round(time.monotonic() - started, 1)
        section.notes.append(f"load average (1, 5, 15 min) before / after: {load} / {load_average()}")
        done.append(section)
        print(report.table([section]), flush=True)
    results = report.save(results_dir, done, host, smoke=args.smoke)
    print("\n" + report.table(results))
    print(f"\nwritten: {results_dir / 'RESULTS.md'}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print(f"FAILED sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


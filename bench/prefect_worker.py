"""Child process in bench/.prefect-venv: the same two trivial steps as Prefect 3 tasks, run on command.

    bench/.prefect-venv/bin/python bench/prefect_worker.py    then {"op": "run", "count": N} lines on stdin

No PREFECT_API_URL: Prefect starts its temporary local server (SQLite under PREFECT_HOME) on the
first flow run, offline. Imports nothing of flowexec or Django.
"""

from __future__ import annotations

import json
import sys
import time

from prefect import flow, task

PREFIX = "BENCH "


@task
def hello(name: str) -> str:
    return f"Hello, {name}!"


@task
def exclaim(text: str) -> str:
    return f"{text}!"


@flow
def bench_two(name: str = "world") -> str:
    return exclaim(hello(name))


def reply(payload: dict) -> None:
    print(PREFIX + json.dumps(payload), flush=True)


def main() -> None:
    import prefect

    reply({"ready": True, "tracing": f"prefect {prefect.__version__}"})
    for line in sys.stdin:
        command = json.loads(line)
        seconds = []
        for _ in range(command["count"]):
            start = time.perf_counter()
            result = bench_two("bench")
            seconds.append(time.perf_counter() - start)
            if result != "Hello, bench!!":
                reply({"error": f"unexpected result {result!r}"})
                break
        else:
            reply({"seconds": seconds})


if __name__ == "__main__":
    main()

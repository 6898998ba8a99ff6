"""Tracing on vs off, side by side: executions/s of the real service under gunicorn, driven by wrk.

    .venv/bin/python bench/tracing_overhead.py [--rounds 3] [--seconds 10] [--connections 4]

Starts two identical services (gunicorn, sync workers, each with its own SQLite database):
"off" with OTEL_SDK_DISABLED=true, "on" with the defaults (server, execute_flow and step spans
into the embedded store). Rounds alternate off/on so machine drift hits both; the ratio is
computed per round and the median reported. Also measures GET /api/executions/{id}/ (a read).
Needs wrk (apt-get install wrk). Only ever targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import LiveService, start_service  # noqa: E402

POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"flow": "hello", "inputs": {"name": "bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token %s"
"""
GET_SCRIPT = """
wrk.headers["Authorization"] = "Token %s"
"""


def requests_per_second(service: LiveService, path: str, script: str, *, seconds: int, connections: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script % service.token)
    result = subprocess.run(
        ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "-s", lua.name, service.url + path],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    )
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if errors:
        raise SystemExit(f"{errors.group(1)} failed requests:\n{result.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="flowexec-bench-"))
    quiet = {"FLOWEXEC_LOG_LEVEL": "WARNING"}
    services = {
        "off": start_service(workdir / "off", server="gunicorn", workers=args.workers,
                             env={"OTEL_SDK_DISABLED": "true", **quiet}),
        "on": start_service(workdir / "on", server="gunicorn", workers=args.workers, env=quiet),
    }
    try:
        execution = {}
        for name, service in services.items():
            response = service.request("POST", "/api/executions/", body=b'{"flow": "hello"}',
                                       headers={"Content-Type": "application/json"})
            execution[name] = json.loads(response.data)["id"]
        results: dict[str, dict[str, list[float]]] = {"run": {}, "read": {}}
        for round_number in range(1, args.rounds + 1):
            for name, service in services.items():
                run = requests_per_second(service, "/api/executions/", POST_SCRIPT,
                                          seconds=args.seconds, connections=args.connections)
                read = requests_per_second(service, f"/api/executions/{execution[name]}/", GET_SCRIPT,
                                           seconds=args.seconds, connections=args.connections)
                results["run"].setdefault(name, []).append(run)
                results["read"].setdefault(name, []).append(read)
                print(f"round {round_number} tracing {name:3}: {run:8.1f} executions/s  {read:8.1f} reads/s")
        print()
        for kind, label in [("run", "POST /api/executions/ (hello, 2 steps)"), ("read", "GET /api/executions/{id}/")]:
            ratios = [on / off for on, off in zip(results[kind]["on"], results[kind]["off"], strict=True)]
            print(f"{label}: off {statistics.median(results[kind]['off']):.1f}/s, "
                  f"on {statistics.median(results[kind]['on']):.1f}/s, "
                  f"on/off median ratio {statistics.median(ratios):.3f} (per round: "
                  + ", ".join(f"{r:.3f}" for r in ratios) + ")")
    finally:
        for service in services.values():
            service.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# CLI start-up timings: `flowexec --help` / `--version` (no network, no OpenTelemetry SDK, no urllib3) and one
# `flowexec run hello` against a local service, traced (default: OTLP to the service) and untraced.
#
#   bench/cli_startup.sh                         starts a throwaway local service (runserver, SQLite) for the runs
#   FLOWEXEC_URL=... FLOWEXEC_TOKEN=... bench/cli_startup.sh    measures against that service instead
#   RUNS=50 bench/cli_startup.sh                 more runs (default 20)
#
# Uses hyperfine when installed (apt-get install hyperfine); otherwise repeats each command under
# /usr/bin/time and prints mean / min / max wall-clock seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-20}
if command -v flowexec >/dev/null 2>&1; then CLI=flowexec; else CLI="$PY -m flowexec.cli"; fi
# Each process configures its own tracing: start from a clean OTEL_* environment.
while IFS='=' read -r name _; do unset "$name"; done < <(env | grep '^OTEL_' || true)

if [[ -z "${FLOWEXEC_URL:-}" ]]; then
    workdir=$(mktemp -d)
    # The service lives as long as this coprocess's stdin stays open.
    coproc SERVICE { "$PY" -c '
import sys
from tests.live import start_service
service = start_service(sys.argv[1])
print(service.url, service.token, flush=True)
sys.stdin.read()
service.stop()
' "$workdir"; }
    read -r FLOWEXEC_URL FLOWEXEC_TOKEN <&"${SERVICE[0]}"
    trap 'exec {SERVICE[1]}>&-; wait "$SERVICE_PID" 2>/dev/null; rm -rf "$workdir"' EXIT
fi
export FLOWEXEC_URL FLOWEXEC_TOKEN
echo "CLI: $CLI   service: $FLOWEXEC_URL   runs: $RUNS"
$CLI run hello >/dev/null  # fail early (and warm the service) if it does not work

commands=(
    "$PY -c pass"
    "$CLI --version"
    "$CLI --help"
    "$CLI run hello"
    "OTEL_TRACES_EXPORTER=none $CLI run hello"
)

if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --warmup 3 --runs "$RUNS" --style basic "${commands[@]}"
else
    for command in "${commands[@]}"; do
        for _ in $(seq "$RUNS"); do
            /usr/bin/time -f '%e' bash -c "$command >/dev/null" 2>&1 >/dev/null | tail -1
        done | awk -v c="$command" '{s+=$1; if(min==""||$1<min)min=$1; if($1>max)max=$1}
            END {printf "%-55s mean %.3f s  min %.3f s  max %.3f s  (%d runs)\n", c, s/NR, min, max, NR}'
    done
fi

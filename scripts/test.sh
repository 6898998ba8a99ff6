#!/usr/bin/env bash
# Set up (venv, packages, chromium) and run the whole test suite: lint, then the tests on SQLite,
# the fast ones again with the OpenTelemetry SDK disabled, then all but the database-agnostic
# fuzz, browser and bench-smoke runs again on PostgreSQL when it is reachable on 127.0.0.1:5432
# (always, under
# FLOWEXEC_REQUIRE_SERVICES=1, which also turns "service not running" skips into failures).
# Extra arguments go to pytest, e.g. scripts/test.sh -k cli -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --browser

echo "==> ruff"
.venv/bin/ruff check .

export DJANGO_DEBUG=1
POSTGRES_URL=${FLOWEXEC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

echo "==> tests on SQLite"
env -u DATABASE_URL .venv/bin/pytest "$@"

echo "==> fast tests on SQLite with OTEL_SDK_DISABLED=true (tracing is optional)"
env -u DATABASE_URL OTEL_SDK_DISABLED=true .venv/bin/pytest -q -m "not slow and not browser" "$@"

if [ "${FLOWEXEC_REQUIRE_SERVICES:-0}" = "1" ] || .venv/bin/python -c \
    "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=1).close()" 2>/dev/null; then
  echo "==> tests on PostgreSQL ($POSTGRES_URL)"
  DATABASE_URL=$POSTGRES_URL .venv/bin/pytest -m "not fuzz and not browser" --ignore=tests/test_bench.py "$@"
else
  echo "==> SKIPPED the PostgreSQL run: nothing listens on 127.0.0.1:5432"
fi

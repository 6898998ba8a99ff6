#!/usr/bin/env bash
# Set up everything and run the main job: database, example flows, a demo user and token, the
# service under gunicorn (left running), then one traced CLI run whose result and trace links it
# prints.   scripts/demo.sh stop   stops the service.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var

PORT=${PORT:-8000}
URL="http://127.0.0.1:$PORT"
PIDFILE=var/server.pid

stop_server() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    # SIGTERM: running executions get FLOWEXEC_SHUTDOWN_GRACE (20 s) to finish; queued ones stay
    # pending and run at the next start.
    kill "$(cat "$PIDFILE")"
    for _ in $(seq 400); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    echo "stopped the service (pid $(cat "$PIDFILE"))"
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = "stop" ]; then stop_server; exit 0; fi

scripts/bootstrap.sh
export DJANGO_DEBUG=1
# DATABASE_URL unset: the default db.sqlite3 beside manage.py, so `python manage.py ...` sees it too.
# No DJANGO_SECRET_KEY needed: with DEBUG every process shares the key kept in var/debug_secret_key.
PY=.venv/bin/python

echo "==> database and example flows"
$PY manage.py migrate --noinput -v0
$PY manage.py loadflows examples/flows
TOKEN=$($PY manage.py createdemo --username demo --password demo)

stop_server
echo "==> starting the service on $URL (gunicorn, 2 gthread workers; log: var/server.log)"
GUNICORN_BIND=127.0.0.1:$PORT nohup .venv/bin/gunicorn -c flowexec/gunicorn.conf.py flowexec.wsgi \
  >var/server.log 2>&1 &
echo $! > "$PIDFILE"
$PY - "$URL/healthz" "$(cat "$PIDFILE")" <<'WAIT' || { cat var/server.log; exit 1; }
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except OSError:
        os.kill(pid, 0)  # raises when the server died: no point waiting
        time.sleep(0.1)
sys.exit("the service did not answer /healthz within 60 s")
WAIT

echo "==> flowexec run greet --input name=Ada   (the CLI, traced, talking to the service)"
export FLOWEXEC_URL=$URL FLOWEXEC_TOKEN=$TOKEN
.venv/bin/flowexec run greet --input name=Ada --input service_url="$URL"

cat <<DONE

The service keeps running at $URL
  admin:   $URL/admin/   (login demo / demo; Executions -> the run above shows its trace waterfall)
  API:     $URL/api/docs/   (token: $TOKEN)
  CLI:     FLOWEXEC_URL=$URL FLOWEXEC_TOKEN=$TOKEN .venv/bin/flowexec --help
  stop:    scripts/demo.sh stop
DONE

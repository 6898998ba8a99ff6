"""gunicorn settings: `gunicorn -c flowexec/gunicorn.conf.py flowexec.wsgi`.

gthread workers: each worker answers requests on `threads` threads, so a slow client or a sync
request waiting for its execution (at most FLOWEXEC_SYNC_WAIT) holds one thread, not the worker,
and `/healthz` keeps answering. Executions themselves run on the worker's in-process pool, never in
a request thread, and gthread's `timeout` only kills a worker whose main loop stops, never one
with a long request.

Each worker starts itself (TracerProvider, sweep) when it imports flowexec.wsgi after the fork,
never in the master: a BatchSpanProcessor thread started before fork would not exist in the
workers. On SIGTERM a worker stops taking new work at once (waiting requests answer 202), then
lets running executions finish within FLOWEXEC_SHUTDOWN_GRACE; `graceful_timeout` leaves room.
"""

import gc
import os
import signal

# Plain data, importable without Django configured (the master never sets Django up).
from executions.conf import DEFAULTS

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
keepalive = 5
# The master's bound for a worker to stop: the executions' grace plus time to answer and flush.
graceful_timeout = int(float(os.environ.get("FLOWEXEC_SHUTDOWN_GRACE") or DEFAULTS["FLOWEXEC_SHUTDOWN_GRACE"])) + 10
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
# Access lines never show `?token=...` values or credential headers (flowexec/access_log.py).
logger_class = "flowexec.access_log.RedactingLogger"


def post_worker_init(worker):
    """Chain the worker's SIGTERM handler; move the loaded app's objects out of the garbage collector's way.

    The SIGTERM handler stops taking new executions as soon as the stop begins. gc.freeze: the ~110k
    objects of Django, DRF and the SDK live as long as the worker, yet every full collection walked them;
    frozen, a full collection pauses a request 5-15 ms instead of 60-77 ms (2,000 API requests, SQLite).
    """
    # Lazy: this file is read by the master, which never loads Django; the worker has loaded the app.
    from executions import submission

    graceful_exit = signal.getsignal(signal.SIGTERM)

    def stop_taking_work(signum, frame):
        submission.begin_stop()
        graceful_exit(signum, frame)

    signal.signal(signal.SIGTERM, stop_taking_work)
    gc.freeze()


def worker_exit(server, worker):
    """After the last request: give running executions the grace period, then exit without waiting more."""
    # Lazy: as above.
    from flowexec import bootstrap

    if bootstrap.stop():
        # The leftovers are failed already; do not let interpreter exit join their threads.
        os._exit(0)

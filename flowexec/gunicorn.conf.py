"""gunicorn settings: `gunicorn -c flowexec/gunicorn.conf.py flowexec.wsgi`.

The TracerProvider is created per worker, after fork, never in the master: a BatchSpanProcessor
thread started before fork would not exist in the workers. Django's settings module is set
before anything is instrumented (instrumenting first leaves Django with empty settings).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None


def post_fork(server, worker):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowexec.settings")
    import django

    django.setup()
    from executions.startup import on_process_start

    on_process_start("flowexec-service")

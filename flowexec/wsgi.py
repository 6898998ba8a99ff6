"""WSGI entry point: every process that imports it (runserver, each gunicorn worker) traces itself."""

import os

import django
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowexec.settings")
django.setup(set_prefix=False)

from executions.startup import on_process_start  # noqa: E402 - needs Django set up first

# Before the handler is built: the Django instrumentation inserts its middleware into settings.
on_process_start("flowexec-service")

application = get_wsgi_application()

"""WSGI entry point: every process that imports it (runserver, each gunicorn worker) starts itself once."""

import os

import django
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowexec.settings")
django.setup(set_prefix=False)

from flowexec import bootstrap  # noqa: E402 - needs Django set up first

# Before the handler is built: the Django instrumentation inserts its middleware into settings.
bootstrap.start("flowexec-service", serve=True)

application = get_wsgi_application()

"""ASGI entry point, for completeness; the service is deployed under gunicorn (WSGI)."""

import os

import django
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowexec.settings")
django.setup(set_prefix=False)

from executions.startup import on_process_start  # noqa: E402 - needs Django set up first

on_process_start("flowexec-service")

application = get_asgi_application()

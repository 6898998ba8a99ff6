"""ASGI entry point, for completeness; the service is deployed under gunicorn (WSGI)."""

import os

import django
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowexec.settings")
django.setup(set_prefix=False)

from flowexec import bootstrap  # noqa: E402 - needs Django set up first

bootstrap.start("flowexec-service", serve=True)

application = get_asgi_application()

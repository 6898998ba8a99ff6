"""The Celery app object, configured from the CELERY_* settings; it imports nothing of the project.

Kept apart from flowexec/celery.py (the worker entry point, which starts the process through
flowexec.bootstrap) so that executions.tasks can use the app without an import cycle.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowexec.settings")

app = Celery("flowexec", include=["executions.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
# Prefork children log through Django's LOGGING (trace ids on every line) straight to the worker's stderr.
# Redirected into Celery's logger instead, their handler wrote into that proxy and every line was dropped.
app.conf.worker_redirect_stdouts = False

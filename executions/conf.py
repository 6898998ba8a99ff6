"""Execution settings: one DEFAULTS dict, read at call time so tests and settings overrides apply.

flowexec/settings.py sets a FLOWEXEC_* setting only when its environment variable is given (typed
after the default below); executions/checks.py validates the values at start-up.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Hosts `http` steps may call (redirect targets are checked too); settings.py allows
    # 127.0.0.1 and localhost when DEBUG and the variable is unset.
    "FLOWEXEC_HTTP_ALLOWED_HOSTS": [],
    # Extra `python` step functions, as dotted paths; the built-ins are always there.
    "FLOWEXEC_PYTHON_FUNCTIONS": [],
    # Threads running one execution's independent steps.
    "FLOWEXEC_STEP_WORKERS": 4,
    # Threads running executions in-process (async ones, and sync API requests) when no broker is set.
    "FLOWEXEC_ASYNC_WORKERS": 4,
    # Celery broker; unset keeps async executions in-process.
    "FLOWEXEC_BROKER_URL": "",
    # Deepest nesting of objects/arrays accepted in a request body (flows, executions).
    "FLOWEXEC_MAX_BODY_DEPTH": 100,
    # Largest accepted flow definition, in bytes of JSON.
    "FLOWEXEC_MAX_DEFINITION_BYTES": 256 * 1024,
    # Deepest chain of `flow` sub-executions.
    "FLOWEXEC_MAX_FLOW_DEPTH": 5,
    # Step timeout when a step sets none, in seconds.
    "FLOWEXEC_DEFAULT_STEP_TIMEOUT": 60.0,
    # A running execution whose runner has not reported for this long is failed as interrupted.
    "FLOWEXEC_STALE_AFTER": 60.0,
    # Longest a sync API request waits for its execution before answering 202 with it still running.
    "FLOWEXEC_SYNC_WAIT": 30.0,
    # On SIGTERM, how long running executions get to finish before they are failed as interrupted.
    "FLOWEXEC_SHUTDOWN_GRACE": 20.0,
    # Celery: the queue, the Redis redelivery timeout, a task's hard time limit, tasks per child process.
    "FLOWEXEC_CELERY_QUEUE": "flowexec",
    "FLOWEXEC_BROKER_VISIBILITY_TIMEOUT": 3600.0,
    "FLOWEXEC_TASK_TIME_LIMIT": 3600.0,
    "FLOWEXEC_WORKER_MAX_TASKS_PER_CHILD": 1000,
    # Seconds a Celery worker process keeps its database connection across tasks (health-checked
    # at each task's first query); the worker's CONN_MAX_AGE, whatever DATABASE_CONN_MAX_AGE says.
    "FLOWEXEC_WORKER_CONN_MAX_AGE": 60.0,
    # Key for secret input values at rest (any string); unset: derived from DJANGO_SECRET_KEY.
    "FLOWEXEC_SECRETS_KEY": "",
}

# Settings that are a number of seconds and must be positive.
POSITIVE_SECONDS = (
    "FLOWEXEC_STALE_AFTER",
    "FLOWEXEC_SYNC_WAIT",
    "FLOWEXEC_SHUTDOWN_GRACE",
    "FLOWEXEC_BROKER_VISIBILITY_TIMEOUT",
    "FLOWEXEC_TASK_TIME_LIMIT",
    "FLOWEXEC_DEFAULT_STEP_TIMEOUT",
    "FLOWEXEC_WORKER_CONN_MAX_AGE",
)
POSITIVE_INTEGERS = (
    "FLOWEXEC_STEP_WORKERS",
    "FLOWEXEC_ASYNC_WORKERS",
    "FLOWEXEC_MAX_DEFINITION_BYTES",
    "FLOWEXEC_MAX_FLOW_DEPTH",
    "FLOWEXEC_WORKER_MAX_TASKS_PER_CHILD",
)


def get(name: str) -> Any:
    """Return an executions setting from Django settings, falling back to DEFAULTS."""
    return getattr(settings, name, DEFAULTS[name])


def seconds(name: str) -> float:
    """Return a seconds setting as a float (executions/checks.py has refused bad ones at start-up)."""
    return float(get(name))

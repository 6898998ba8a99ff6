"""Django settings, read from the environment (12-factor) so the demo, tests and production share them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from executions import conf as executions_conf
from tracing import conf as tracing_conf

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    """Read a 0/1/true/false variable; anything else is a configuration error naming it."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 0 or 1, got {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated list, dropping blanks."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def shared_debug_secret_key(path: Path) -> str:
    """A random key made once and kept in `path`, so every process of a DEBUG service signs alike.

    Without it each gunicorn worker would make its own key and half the admin's requests would
    bounce to the login page. The first process to finish writing wins (an atomic link); the
    others read its key.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(secrets.token_urlsafe(50))
    draft.chmod(0o600)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is not 1")
    SECRET_KEY = shared_debug_secret_key(BASE_DIR / "var" / "debug_secret_key")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# HTTPS in production (DEBUG off): redirect, secure cookies; HSTS is opt-in because browsers keep it.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^ping$"]  # probes and the examples speak plain HTTP to the instance
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD")
# Behind a TLS-terminating proxy: `HTTP_X_FORWARDED_PROTO,https` trusts that header for is_secure().
if _proxy_header := env_list("DJANGO_SECURE_PROXY_SSL_HEADER"):
    if len(_proxy_header) != 2:
        raise ImproperlyConfigured(
            "DJANGO_SECURE_PROXY_SSL_HEADER must be HEADER,VALUE, e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_header[0], _proxy_header[1])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tracing",
    "executions",
]

MIDDLEWARE = [
    # The OpenTelemetry Django middleware is inserted first by tracing.instrumentation.
    "tracing.middleware.HeaderAttributesMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, waterfall CSS) served by the app itself, under gunicorn too: no CDN, no nginx needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "flowexec.urls"
WSGI_APPLICATION = "flowexec.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh SQLite file is not in WAL mode, and deferred transactions fail with
    # "database is locked" under concurrent writers: WAL + IMMEDIATE + a busy timeout.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# With DEBUG, serve straight from the apps' static folders; otherwise run `manage.py collectstatic`.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG



def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as `100/second` or `30/min`; `off` (or 0) means no limit."""
    raw = os.environ.get(name, "").strip() or default
    if raw.lower() in {"off", "0", "none"}:
        return None
    count, _, period = raw.partition("/")
    if not count.isdigit() or period[:1].lower() not in {"s", "m", "h", "d"}:
        raise ImproperlyConfigured(f"{name} must be like 100/second, 30/minute or off, got {raw!r}")
    return raw


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "executions.throttling.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["executions.parsers.JSONBodyParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "executions.renderers.SafeJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("FLOWEXEC_THROTTLE_ANON", "20/second"),
        "user": env_rate("FLOWEXEC_THROTTLE_USER", "300/second"),
        "auth_failure": env_rate("FLOWEXEC_THROTTLE_AUTH_FAILURES", "30/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "executions.api_errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "flowexec API",
    "DESCRIPTION": "Store flow definitions, run them as executions, and read their traces.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Like every /api/ endpoint, the schema and its docs need a token or a session.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from this app's static files, not a CDN: /api/docs/ works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- flowexec: FLOWEXEC_* settings -------------------------------------------------------------
# Defaults and meaning live in executions/conf.py and tracing/conf.py (their DEFAULTS take effect);
# a setting is set here only when its environment variable is given, parsed after the default's
# type. executions/checks.py validates the values at start-up.


def env_value(name: str, default: Any) -> Any:
    """The variable `name` parsed like `default` (bool, int, float, list or str); a bad value names it."""
    raw = os.environ[name]
    if isinstance(default, bool):
        return env_bool(name)
    if isinstance(default, int):
        return env_int(name, default)
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc
    if isinstance(default, list):
        return env_list(name)
    if isinstance(default, str):
        return raw
    raise ImproperlyConfigured(f"{name} cannot be set from the environment; set it in a settings module")


_FLOWEXEC_DEFAULTS = {**executions_conf.DEFAULTS, **tracing_conf.DEFAULTS}
globals().update({
    name: env_value(name, default) for name, default in _FLOWEXEC_DEFAULTS.items() if os.environ.get(name)
})
if DEBUG and "FLOWEXEC_HTTP_ALLOWED_HOSTS" not in os.environ:
    # The demo's flows call the service itself; production allows no host until one is named.
    FLOWEXEC_HTTP_ALLOWED_HOSTS = ["127.0.0.1:*", "localhost:*"]


def flowexec_setting(name: str) -> Any:
    """The effective value of a FLOWEXEC_* setting while this module is read (for the Celery block)."""
    return globals().get(name, _FLOWEXEC_DEFAULTS[name])


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "trace_ids": {"()": "tracing.logs.TraceIdsFilter"},
        # Secret input values of the running execution are masked in every line (tracing/redaction.py).
        "secrets": {"()": "tracing.redaction.SecretsLogFilter"},
    },
    "formatters": {
        "traced": {
            "format": "%(asctime)s %(levelname)s %(name)s "
            "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["trace_ids", "secrets"], "formatter": "traced"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("FLOWEXEC_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
    },
}

# --- flowexec: scale-out (Celery workers; see docs/scale-out.md) ---------------------------------
# Read only when FLOWEXEC_BROKER_URL is set: the service publishes async executions as
# `executions.tasks.run_execution` and `celery -A flowexec worker` processes run them.
_visibility_timeout = float(flowexec_setting("FLOWEXEC_BROKER_VISIBILITY_TIMEOUT"))
CELERY_BROKER_URL = flowexec_setting("FLOWEXEC_BROKER_URL") or None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout,
    # How often workers look for expired unacknowledged tasks: often enough for the timeout above.
    "unacked_restore_interval": max(1, min(10, int(_visibility_timeout / 4))),
    "unacked_restore_throttle": 1 if _visibility_timeout <= 300 else 10,
}
CELERY_TASK_DEFAULT_QUEUE = flowexec_setting("FLOWEXEC_CELERY_QUEUE")
# At-least-once: acknowledge after the task ran, one task reserved per worker process, and a task
# whose worker process died goes back to the queue (executions.tasks makes redelivery safe).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task that runs away is killed (its execution then fails as interrupted); a child process is
# replaced after this many tasks, so a leak in a step function cannot grow forever.
CELERY_TASK_TIME_LIMIT = float(flowexec_setting("FLOWEXEC_TASK_TIME_LIMIT"))
CELERY_WORKER_MAX_TASKS_PER_CHILD = int(flowexec_setting("FLOWEXEC_WORKER_MAX_TASKS_PER_CHILD"))
# Celery's Django fixup closes the database connection before and after every task unless this is
# set; reconnecting (SQLite: open, PRAGMAs, functions) cost more than a short execution. Set to the
# child's lifetime, it never closes one: flowexec/celery.py applies Django's CONN_MAX_AGE rule instead.
CELERY_DB_REUSE_MAX = CELERY_WORKER_MAX_TASKS_PER_CHILD
# --- end of scale-out block ---------------------------------------------------------------------

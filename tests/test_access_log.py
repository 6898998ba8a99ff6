"""The shipped gunicorn config: its access log never shows secrets in URIs, queries or headers; its worker hook."""

from __future__ import annotations

import datetime
import io
import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config

CONF = Path(__file__).resolve().parent.parent / "flowexec" / "gunicorn.conf.py"


def test_the_service_access_log_redacts_query_values_referers_and_credential_headers() -> None:
    cfg = Config()
    cfg.set("logger_class", runpy.run_path(str(CONF)).get("logger_class", "gunicorn.glogging.Logger"))
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '%(r)s q=%(q)s f=%(f)s key=%({x-api-key}i)s ua=%(a)s')
    log = cfg.logger_class(cfg)
    out = io.StringIO()
    log.access_log.handlers = [logging.StreamHandler(out)]
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": "/api/executions/?token=tok-8842&page=2", "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/api/executions/", "QUERY_STRING": "token=tok-8842&page=2",
        "HTTP_REFERER": "https://app.example/?sig=sig-8842", "HTTP_USER_AGENT": "curl",
    }
    request = SimpleNamespace(headers=[("X-API-KEY", "key-8842")])
    response = SimpleNamespace(status="200 OK", sent=2, headers=[])
    log.access(response, request, environ, datetime.timedelta(seconds=0.01))

    line = out.getvalue()
    assert "8842" not in line, line
    assert line.startswith("GET /api/executions/?token=REDACTED&page=2 HTTP/1.1 q=token=REDACTED&page=2")
    assert "f=https://app.example/?sig=REDACTED key=[REDACTED] ua=curl" in line


def test_a_worker_freezes_the_loaded_app_out_of_the_garbage_collectors_scans(tmp_path: Path) -> None:
    # A fresh interpreter: freezing, and the SIGTERM handler the hook installs, must not touch this one.
    script = (
        "import gc, runpy, django; django.setup();"
        f"runpy.run_path({str(CONF)!r})['post_worker_init'](None); print(gc.get_freeze_count())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "flowexec.settings", "DATABASE_URL": f"sqlite:///{tmp_path / 'db'}"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) > 10_000

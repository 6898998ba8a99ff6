"""flowexec/settings.py read from the environment: typed FLOWEXEC_* values, one DEBUG key, deploy checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json
from flowexec import settings
names = [n for n in dir(settings) if n.startswith("FLOWEXEC_")]
print(json.dumps({"names": names, "key": settings.SECRET_KEY,
                  "values": {n: getattr(settings, n) for n in names}}))
"""


def settings_in_fresh_interpreter(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FLOWEXEC_", "OTEL_"))}
    proc = subprocess.run([sys.executable, "-c", PROBE], env={**clean, "PYTHONPATH": str(REPO), **env},
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_settings_restate_no_flowexec_default_when_the_environment_is_silent():
    loaded = settings_in_fresh_interpreter(DJANGO_SECRET_KEY="x" * 50)
    assert loaded["names"] == []


def test_environment_values_are_typed_after_the_defaults():
    loaded = settings_in_fresh_interpreter(
        DJANGO_SECRET_KEY="x" * 50, FLOWEXEC_RECORD_CONTENT="0", FLOWEXEC_SYNC_WAIT="2.5",
        FLOWEXEC_STEP_WORKERS="8", FLOWEXEC_PYTHON_FUNCTIONS="a.b, c.d",
    )
    assert loaded["values"] == {"FLOWEXEC_RECORD_CONTENT": False, "FLOWEXEC_SYNC_WAIT": 2.5,
                                "FLOWEXEC_STEP_WORKERS": 8, "FLOWEXEC_PYTHON_FUNCTIONS": ["a.b", "c.d"]}


def test_every_debug_process_without_a_secret_key_shares_one_key():
    keys = {settings_in_fresh_interpreter(DJANGO_DEBUG="1")["key"] for _ in range(3)}
    assert len(keys) == 1 and len(keys.pop()) >= 50


def test_check_deploy_is_clean_with_production_settings_from_the_environment_only():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FLOWEXEC_", "OTEL_"))}
    production = {
        "DJANGO_SECRET_KEY": "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyz" * 2,
        "DJANGO_ALLOWED_HOSTS": "flowexec.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://flowexec.example.com",
        "DJANGO_SECURE_HSTS_SECONDS": "31536000",
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "DJANGO_SECURE_HSTS_PRELOAD": "1",
        "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "DJANGO_SETTINGS_MODULE": "flowexec.settings",
        "OTEL_SDK_DISABLED": "true",
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        env={**clean, "PYTHONPATH": str(REPO), **production}, cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


CELERY_PROBE = """
import json
from flowexec import settings
print(json.dumps([settings.CELERY_TASK_TIME_LIMIT, settings.CELERY_WORKER_MAX_TASKS_PER_CHILD,
                  settings.CELERY_TASK_DEFAULT_QUEUE]))
"""


def test_celery_tasks_get_a_time_limit_and_child_processes_a_task_budget():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FLOWEXEC_", "OTEL_"))}

    def limits(**env: str) -> list:
        proc = subprocess.run([sys.executable, "-c", CELERY_PROBE],
                              env={**clean, "PYTHONPATH": str(REPO), "DJANGO_SECRET_KEY": "x" * 50, **env},
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert limits() == [3600.0, 1000, "flowexec"]
    assert limits(FLOWEXEC_TASK_TIME_LIMIT="90", FLOWEXEC_WORKER_MAX_TASKS_PER_CHILD="50",
                  FLOWEXEC_CELERY_QUEUE="q2") == [90.0, 50, "q2"]

"""Modules the standalone CLI loads import in a fresh interpreter without Django or any span exporter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Add modules here as they must stay Django-free (flowexec.cli, executions.engine, ...).
DJANGO_FREE_MODULES = [
    "tracing.provider",
    "tracing.exporters",
    "tracing.propagation",
    "tracing.jaeger",
    "tracing.logs",
]

# Exporters cost start-up time (OTLP/HTTP pulls requests + protobuf, gRPC more): imported only when selected.
EXPORTER_PREFIXES = ("opentelemetry.exporter", "grpc", "requests", "google.protobuf")

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def modules_after_import(*names: str, env: dict[str, str] | None = None) -> set[str]:
    """sys.modules of a fresh interpreter (no DJANGO_SETTINGS_MODULE) after importing names."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *names],
        env={**clean, **(env or {}), "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


@pytest.mark.parametrize("module", DJANGO_FREE_MODULES)
def test_module_imports_without_django_or_exporters(module):
    loaded = modules_after_import(module)
    assert module in loaded
    assert not [name for name in loaded if name == "django" or name.startswith("django.")]
    assert not [name for name in loaded if name.startswith(EXPORTER_PREFIXES)]


def test_selecting_otlp_http_imports_only_that_exporter():
    probe = (
        "from tracing.config import TracingConfig; from tracing.exporters import build_exporter; "
        "build_exporter('otlp', TracingConfig())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", f"{probe}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OTEL_"))},
            "PYTHONPATH": str(REPO),
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout))
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in loaded
    assert "opentelemetry.exporter.otlp.proto.grpc" not in loaded
    assert "grpc" not in loaded
    assert "django" not in loaded

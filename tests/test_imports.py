"""Modules the standalone CLI loads import in a fresh interpreter without Django or any span exporter."""

from __future__ import annotations

import ast
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


# --- the import graph of the project's own modules ------------------------------------------

FIRST_PARTY = ("flowexec", "executions", "tracing")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _first_party_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in FIRST_PARTY
        for path in sorted((REPO / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported first-party module, line, imported inside a function) for every import in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    lazy_lines = {
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno, node.lineno in lazy_lines))
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    modules = _first_party_modules()
    known = set(modules)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    lazy: list[tuple[str, str, int]] = []
    for name, path in modules.items():
        for target, line, inside_function in _imports(name, path, known):
            edges[name].add(target)
            if inside_function:
                lazy.append((name, target, line))
    return edges, lazy


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def _within_package(module: str, target: str) -> bool:
    """A package's __init__ re-exporting its own submodules is not a cycle a reader has to untangle."""
    return target.startswith(module + ".") or module.startswith(target + ".")


def test_no_import_cycle_among_first_party_modules_counting_imports_inside_functions():
    edges, _ = _graph()
    edges = {module: {t for t in targets if not _within_package(module, t)} for module, targets in edges.items()}
    assert _cycles(edges) == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    edges = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert _cycles(edges) == [["a", "b"]]
    module = tmp_path / "flowexec" / "probe.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from executions import services\n")
    found = _imports("flowexec.probe", module, {"executions", "executions.services"})
    assert found == [("executions.services", 2, True)]


def _explained(lines: list[str], line: int) -> bool:
    """A comment on the import line, or above it with only imports and blank lines in between."""
    if "#" in lines[line - 1]:
        return True
    for text in reversed(lines[: line - 1]):
        stripped = text.strip()
        if stripped.startswith("#"):
            return True
        if stripped and not stripped.startswith(("from ", "import ")):
            return False
    return False


def test_every_lazy_import_of_a_first_party_module_says_why():
    _, lazy = _graph()
    modules = _first_party_modules()
    unexplained = [
        f"{modules[module].relative_to(REPO)}:{line} imports {target} inside a function"
        for module, target, line in lazy
        if not _explained(modules[module].read_text().splitlines(), line)
    ]
    assert unexplained == [], "say in a comment why each of these is lazy, or move it to the top"


def test_tracing_imports_nothing_of_executions():
    """Imports flow one way (STYLE.md): executions uses tracing; tracing is handed what it needs at start-up."""
    edges, _ = _graph()
    backwards = sorted(
        f"{module} -> {target}"
        for module, targets in edges.items()
        if module.split(".")[0] == "tracing"
        for target in targets
        if target.split(".")[0] == "executions"
    )
    assert backwards == []

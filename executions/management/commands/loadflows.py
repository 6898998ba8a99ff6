"""Load flow definitions from files or folders; a new version only when a definition changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from executions import services
from executions.engine.errors import FlowValidationError

SUFFIXES = {".json", ".yaml", ".yml"}


class Command(BaseCommand):
    help = "Load flow definitions (JSON or YAML files, or folders of them) into the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    def handle(self, *args: Any, paths: list[Path], **options: Any) -> None:
        files = sorted(file for path in paths for file in _definition_files(path))
        if not files:
            raise CommandError("no .json, .yaml or .yml files found", returncode=2)
        problems: list[str] = []
        for file in files:
            try:
                flow, created = services.flow_save(source=file.read_bytes())
            except FlowValidationError as exc:
                problems.extend(f"{file}: {problem}" for problem in exc.problems)
                continue
            state = "loaded" if created else "unchanged"
            self.stdout.write(f"{state:9} {flow.name} v{flow.version}  ({file})")
        if problems:
            raise CommandError("\n".join(problems), returncode=2)


def _definition_files(path: Path) -> list[Path]:
    if path.is_dir():
        return [file for file in path.iterdir() if file.suffix in SUFFIXES]
    if not path.exists():
        raise CommandError(f"{path}: no such file or directory", returncode=2)
    return [path]

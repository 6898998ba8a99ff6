"""Load flow definitions from files or folders; a new version only when a definition changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from executions import services
from executions.engine.errors import FlowValidationError
from flowexec.cli.errors import CliError
from flowexec.cli.flowfiles import definition_files


class Command(BaseCommand):
    help = "Load flow definitions (JSON or YAML files, or folders of them) into the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    def handle(self, *args: Any, paths: list[Path], **options: Any) -> None:
        try:
            # The same files `flowexec flows apply` would send: one rule for which files are definitions.
            files = definition_files([str(path) for path in paths])
        except CliError as exc:
            raise CommandError(exc.message, returncode=2) from exc
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

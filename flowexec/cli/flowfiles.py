"""`flowexec flows apply|validate FILE...`: flow definition files to the service, or checked locally."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flowexec.cli.errors import EXIT_OK, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from flowexec.cli.client import ApiClient

SUFFIXES = {".json": "application/json", ".yaml": "application/yaml", ".yml": "application/yaml"}


def definition_files(paths: Sequence[str]) -> list[Path]:
    """The named files, and the .json/.yaml/.yml files of named folders, in a stable order."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(file for file in path.iterdir() if file.suffix in SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"{path}: no such file or directory", EXIT_USAGE)
    if not files:
        raise CliError("no .json, .yaml or .yml files found", EXIT_USAGE)
    return files


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}", EXIT_USAGE) from exc


def apply(api: ApiClient, paths: Sequence[str], *, out: IO[str], err: IO[str], as_json: bool) -> int:
    """POST each definition; print created/unchanged per file and every problem; exit 2 if any file failed."""
    # Lazy: the client imports urllib3 (~90 ms); only commands that talk to the service pay for it.
    from flowexec.cli.client import problems_of

    results: list[dict[str, Any]] = []
    for file in definition_files(paths):
        content_type = SUFFIXES.get(file.suffix, "application/json")
        status, data = api.exchange("POST", "/api/flows/", raw=_read(file), content_type=content_type, accept=(400,))
        if status == 400:
            results.append({"file": str(file), "state": "invalid", "problems": problems_of(data)})
        else:
            state = "created" if status == 201 else "unchanged"
            results.append(
                {"file": str(file), "state": state, "name": data.get("name"), "version": data.get("version")}
            )
    return _report(results, out=out, err=err, as_json=as_json, line=_applied_line)


def _applied_line(result: Mapping[str, Any]) -> str:
    return f"{result['state']:9} {result['name']} v{result['version']}  ({result['file']})"


class _AnyFunction(Mapping[str, Callable[..., Any]]):
    """Accept every python function name: which ones a service allows is its own setting."""

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return lambda **kwargs: None

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def validate(paths: Sequence[str], *, out: IO[str], err: IO[str], as_json: bool) -> int:
    """Check each definition with the service's own engine, locally; every problem, exit 2 if any."""
    # Lazy: only `validate` needs the engine and its YAML parser.
    from executions.engine import EngineConfig, FlowValidationError, parse

    config = EngineConfig(python_functions=_AnyFunction())
    results: list[dict[str, Any]] = []
    for file in definition_files(paths):
        try:
            definition = parse(_read(file), config=config)
        except FlowValidationError as exc:
            results.append({"file": str(file), "state": "invalid", "problems": list(exc.problems)})
            continue
        results.append({"file": str(file), "state": "valid", "name": definition.name, "version": definition.version})
    return _report(results, out=out, err=err, as_json=as_json, line=lambda r: f"valid     {r['name']}  ({r['file']})")


def _report(
    results: list[dict[str, Any]], *, out: IO[str], err: IO[str], as_json: bool, line: Callable[[Any], str]
) -> int:
    """Per-file lines on stdout, problems as `file: problem` lines on stderr (or all as JSON); the exit code."""
    failed = [result for result in results if result["state"] == "invalid"]
    if as_json:
        print(json.dumps(results, indent=2), file=out)
    else:
        for result in results:
            if result["state"] != "invalid":
                print(line(result), file=out)
        for result in failed:
            for problem in result["problems"]:
                print(f"{result['file']}: {problem}", file=err)
    return EXIT_USAGE if failed else EXIT_OK

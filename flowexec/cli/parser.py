"""argv to checked arguments: global options, one subparser per command with examples, local checks."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from flowexec import __version__
from flowexec.cli.config import CONFIG_ENV, DEFAULT_TIMEOUT, DEFAULT_URL, check_request_id
from flowexec.cli.errors import EXIT_USAGE, CliError
from flowexec.cli.inputs import InputSyntaxError, parse_pairs
from flowexec.cli.render import FINISHED

STATUSES = sorted(FINISHED | {"pending", "running"})
DEFAULT_LIMIT = 20

EPILOG = f"""\
examples:
  flowexec run hello --input name=Ada          run, follow to the end, print outputs, execution and trace id
  flowexec run hello --input count:=3          KEY:=JSON sends JSON (number, boolean, list, object)
  flowexec run slow --detach                   submit, print the execution id, do not follow
  flowexec watch 0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11
  flowexec list --status failed --since 1h
  flowexec flows apply examples/flows
  flowexec trace 4bf92f3577b34da6a3ce929d0e0e4736
  flowexec --json run hello | jq .outputs
  flowexec COMMAND --help                      options and examples of one command

input syntax (every client: flowexec, manage.py runflow, runflow --remote):
  --input name=42       the string "42" (KEY=VALUE is always a string)
  --input count:=42     the number 42; count:=true, ids:='[1, 2]', opts:='{{"a": 1}}' (KEY:=JSON)

configuration (an option wins over the environment, which wins over the config file):
  FLOWEXEC_URL, FLOWEXEC_TOKEN   --url, --token
  {CONFIG_ENV}                TOML file with url = "..." and token = "..." (default
                                 ~/.config/flowexec/config; chmod 600 when it holds a token)
  TRACEPARENT, TRACESTATE, BAGGAGE
                                 continue the caller's trace (a CI job's, a script's)
  OTEL_*                         standard OpenTelemetry settings; spans go over OTLP to {{url}}/v1/traces by
                                 default (with the token: only there); OTEL_TRACES_EXPORTER=none turns it off

exit codes:
  0 ok   1 the flow failed or was cancelled   2 usage or validation error
  3 service unreachable, timed out or authentication refused   4 unexpected error in the CLI (a bug; -v)
  130 interrupted (Ctrl-C during run cancels the execution)   141 output pipe closed (e.g. | head)
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print one line and exit with the usage error code."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _global_options(*, request_id: bool = True) -> argparse.ArgumentParser:
    """Options accepted before or after the command; SUPPRESS keeps a subcommand from resetting them."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"service URL (env FLOWEXEC_URL, default {DEFAULT_URL})"
    )
    group.add_argument("--token", default=argparse.SUPPRESS, help="API token (env FLOWEXEC_TOKEN, or the config file)")
    group.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=f"config file (env {CONFIG_ENV})")
    if request_id:
        group.add_argument(
            "--request-id", metavar="ID", default=argparse.SUPPRESS, help="X-Request-ID to send (default: a new UUID)"
        )
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help=f"seconds to wait for each answer of the service (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show log messages on stderr"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """Build the argparse tree: global options plus one subparser per command."""
    common = _global_options()
    parser = _Parser(
        prog="flowexec",
        description="Run and inspect flows on a flowexec service; every command is traced (OpenTelemetry).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"flowexec-cli {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def add(
        name: str, help_text: str, examples: str, parents: list[argparse.ArgumentParser] | None = None
    ) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"examples:\n{examples}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=parents or [common],
        )

    run = add(
        "run",
        "run a flow and follow it to the end (the execution id is printed as soon as it exists)",
        "  flowexec run hello --input name=Ada\n"
        '  flowexec run hello --input count:=3 --input tags:=\'["a", "b"]\'\n'
        "  flowexec run parallel --inputs-file inputs.json\n"
        "  flowexec run slow --detach           # submit only; then: flowexec watch ID\n"
        "Ctrl-C cancels the execution. The exit code is the flow's (0 succeeded, 1 failed) however long it runs.",
    )
    run.add_argument("flow", metavar="FLOW", help="flow name")
    run.add_argument(
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input, repeatable: KEY=VALUE sends a string, KEY:=JSON a JSON value",
    )
    run.add_argument("--inputs-file", metavar="FILE", help="JSON object of inputs ('-' for stdin); --input wins")
    run.add_argument(
        "-d", "--detach", action="store_true", help="submit, print the execution id and exit without following"
    )
    # Earlier spellings: --async meant --detach; --wait (alone or with --async) meant what run now always does.
    run.add_argument("--async", dest="detach", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--wait", dest="follow", action="store_true", help=argparse.SUPPRESS)

    watch = add(
        "watch",
        "follow an execution to the end: progress on a terminal, then the same output and exit code as run",
        "  flowexec watch 0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11\n"
        "Ctrl-C stops watching; the execution keeps running (flowexec cancel ID stops it).",
    )
    watch.add_argument("id", metavar="ID", help="execution id")
    add("get", "show one execution with its steps", "  flowexec get 0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11").add_argument(
        "id", metavar="ID", help="execution id"
    )
    add(
        "cancel", "cancel a pending or running execution", "  flowexec cancel 0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11"
    ).add_argument("id", metavar="ID", help="execution id")

    listing = add(
        "list",
        "list executions, newest first",
        "  flowexec list --limit 100\n"
        "  flowexec list --status failed --flow hello --since 2h\n"
        "  flowexec list --request-id ci-1234   # after the command: a filter, not the X-Request-ID to send\n"
        "  flowexec --json list --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 | jq '.results[].id'",
        parents=[_global_options(request_id=False)],
    )
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help=f"at most N executions (default {DEFAULT_LIMIT})"
    )
    listing.add_argument("--status", choices=STATUSES, help="only this status")
    listing.add_argument("--flow", help="only this flow")
    listing.add_argument("--request-id", dest="filter_request_id", metavar="ID", help="only this request id")
    listing.add_argument("--trace-id", metavar="TRACE_ID", help="only this trace")
    listing.add_argument("--client", choices=["api", "cli", "manage"], help="only executions started by this client")
    listing.add_argument(
        "--since", metavar="WHEN", help="only executions created since WHEN: 30s, 10m, 2h, 1d or an ISO 8601 time"
    )

    flows = add(
        "flows",
        "list, apply or validate flow definitions",
        "  flowexec flows                        # the stored flows (same as: flowexec flows list)\n"
        "  flowexec flows apply examples/flows   # create each flow, or store a new version when it changed\n"
        "  flowexec flows validate my-flow.yaml  # every problem, exit 2; nothing is sent",
    )
    flows_sub = flows.add_subparsers(dest="flows_command", metavar="ACTION", parser_class=_Parser)
    flows_sub.add_parser("list", help="list the stored flows", description="list the stored flows", parents=[common])
    for action, text, examples in (
        (
            "apply",
            "store definitions on the service: new flows, or a new version of a changed one",
            "  flowexec flows apply examples/flows            # every .json/.yaml/.yml file of the folder\n"
            "  flowexec flows apply greet.json report.yaml\n"
            "Prints created/unchanged per file; every problem as FILE: PROBLEM on stderr, then exit 2.",
        ),
        (
            "validate",
            "check definitions locally and print every problem (exit 2 if any); sends nothing",
            "  flowexec flows validate my-flow.yaml\n"
            "  flowexec flows validate examples/flows\n"
            "python step functions are the service's setting: any name passes here, apply checks it.",
        ),
    ):
        flows_sub.add_parser(
            action,
            help=text,
            description=text,
            epilog=f"examples:\n{examples}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        ).add_argument("paths", nargs="+", metavar="FILE", help="JSON or YAML file, or a folder of them")

    add(
        "trace",
        "show a trace as an indented span tree",
        "  flowexec trace 4bf92f3577b34da6a3ce929d0e0e4736",
    ).add_argument("trace_id", metavar="TRACE_ID")
    completion = add(
        "completion",
        "print a shell completion script",
        "  source <(flowexec completion bash)             # bash, now\n"
        "  flowexec completion zsh > ~/.zfunc/_flowexec  # zsh (or: source <(flowexec completion zsh))",
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
    return parser


SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """`30s`, `10m`, `2h`, `1d` before now, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    unit = SINCE_UNITS.get(text[-1:].lower())
    if unit and text[:-1].isdigit():
        return now - timedelta(seconds=int(text[:-1]) * unit)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"invalid --since {text!r}: expected 30s, 10m, 2h, 1d or an ISO 8601 time", EXIT_USAGE) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_inputs(pairs: Sequence[str], inputs_file: str | None) -> dict[str, Any]:
    """Merge --inputs-file and --input pairs (pairs win), in the syntax every client shares."""
    inputs = _read_inputs_file(inputs_file) if inputs_file else {}
    try:
        inputs.update(parse_pairs(pairs))
    except InputSyntaxError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    return inputs


def _read_inputs_file(path: str) -> dict[str, Any]:
    """Read a JSON object of inputs from a file or stdin."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise CliError(f"cannot read --inputs-file {path!r}: {exc.strerror or exc}", EXIT_USAGE) from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"invalid --inputs-file {path!r}: not JSON ({exc.msg}, line {exc.lineno})", EXIT_USAGE) from exc
    if not isinstance(data, dict):
        raise CliError(f"invalid --inputs-file {path!r}: expected a JSON object", EXIT_USAGE)
    return data


def check_arguments(args: argparse.Namespace) -> None:
    """Validate command arguments locally, before any network or tracing set-up."""
    if args.command in ("get", "cancel", "watch"):
        try:
            uuid.UUID(args.id)
        except ValueError as exc:
            raise CliError(f"invalid execution id {args.id!r}: expected a UUID", EXIT_USAGE) from exc
    if args.command == "trace":
        args.trace_id = _trace_id(args.trace_id)
    if args.command == "run":
        args.input_values = read_inputs(args.inputs, args.inputs_file)
    if args.command == "list":
        if args.limit < 1:
            raise CliError(f"invalid --limit {args.limit}: expected a positive number", EXIT_USAGE)
        if args.filter_request_id:
            check_request_id(args.filter_request_id)
        if args.trace_id:
            args.trace_id = _trace_id(args.trace_id)
        args.since_time = parse_since(args.since, datetime.now(UTC)) if args.since else None


def _trace_id(text: str) -> str:
    """32 lower-case hex digits, not all zero."""
    trace_id = text.lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id) or trace_id == "0" * 32:
        raise CliError(f"invalid trace id {text!r}: expected 32 hex digits", EXIT_USAGE)
    return trace_id

"""Entry point: parse, check, trace the command, and turn every outcome into output and an exit code."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from flowexec.cli import commands, completion, flowfiles
from flowexec.cli.config import CLIENT, SERVICE_NAME, Settings, settings_from_args
from flowexec.cli.errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, CliError
from flowexec.cli.parser import build_parser, check_arguments
from flowexec.cli.render import one_line
from tracing import attributes as attrs

# Heavy modules (urllib3, the OpenTelemetry SDK, exporters, instrumentation) are imported inside the
# functions that use them, so `--help`, `--version` and usage errors stay fast (DESIGN.md, Known pitfalls).


def _configure_logging(verbose: bool) -> None:
    """Quiet by default (stderr is for one error line); -v shows INFO and library warnings."""
    import logging

    logging.captureWarnings(True)
    if verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="flowexec: %(levelname)s %(name)s: %(message)s"
        )
    else:
        logging.getLogger().addHandler(logging.NullHandler())


def _local_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int | None:
    """Commands that need neither the service nor tracing; None for every other command."""
    if args.command == "completion":
        script = completion.bash_script if args.shell == "bash" else completion.zsh_script
        sys.stdout.write(script(parser))
        return 0
    if args.command == "flows" and args.flows_command == "validate":
        as_json = getattr(args, "json", False)
        return flowfiles.validate(args.paths, out=sys.stdout, err=sys.stderr, as_json=as_json)
    return None


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one command inside its root span, then flush the output, then the spans (bounded)."""
    # Lazy: `--help` and usage errors must not import urllib3 or the OpenTelemetry SDK.
    from flowexec.cli.client import ApiClient
    from flowexec.cli.telemetry import Tracing, command_span

    api = ApiClient(settings)
    tracing = Tracing.start(settings, api.pool)
    try:
        attributes = {attrs.FLOW_NAME: args.flow} if args.command == "run" else {}
        with command_span(args.command, settings, attributes) as span:
            ctx = commands.Context(settings=settings, api=api, span=span, out=sys.stdout, err=sys.stderr)
            code = commands.COMMANDS[args.command](args, ctx)
        sys.stdout.flush()  # the output is complete: whoever reads it need not wait for the span export
        return code
    finally:
        tracing.stop()


def _quiet_stdout() -> None:
    """The reader of stdout went away: point it at /dev/null so the exit flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None, *, service_name: str = SERVICE_NAME, client: str = CLIENT) -> int:
    """Parse arguments, run the command, and turn every failure into one stderr line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    _configure_logging(verbose)
    try:
        check_arguments(args)
        code = _local_command(args, parser)
        if code is None:
            code = run_command(args, settings_from_args(args, os.environ, service_name=service_name, client=client))
        sys.stdout.flush()  # here, not at exit: a closed pipe must reach the BrokenPipeError branch below
        return code
    except CliError as exc:
        print(f"flowexec: {one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("flowexec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `flowexec list | head`: the reader has all it wants; end quietly like a Unix tool
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # the CLI boundary: one clear line instead of a traceback (-v adds it)
        if verbose:
            import traceback

            traceback.print_exc()
        print(f"flowexec: unexpected error: {type(exc).__name__}: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_INTERNAL


def console(argv: Sequence[str] | None = None) -> NoReturn:
    """The `flowexec` command: main(), the exit handlers, then an exit without the interpreter's teardown.

    By the time main() returns, the output is flushed and the spans are exported (or given up on within their
    bound); freeing every loaded module afterwards was ~8% of a traced run (47 M instructions under callgrind).
    In-process callers (`manage.py runflow --remote`, tests) call main() and keep their interpreter.
    """
    code = main(argv)
    # What a normal exit runs first: atexit handlers (logging's flush, the tracing flush, already done here).
    atexit._run_exitfuncs()
    with contextlib.suppress(OSError):  # main() flushed stdout already and quieted a closed pipe
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)

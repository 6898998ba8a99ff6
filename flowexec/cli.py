"""flowexec command-line client: run flows on a flowexec service over HTTP, traced end to end."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NoReturn

from flowexec import __version__
from tracing import attributes as attrs

if TYPE_CHECKING:
    from opentelemetry.trace import Span

# Heavy modules (urllib3, the OpenTelemetry SDK, exporters, instrumentation) are imported inside the
# functions that use them, so `--help`, `--version` and usage errors stay fast (DESIGN.md, Known pitfalls).

EXIT_OK = 0
EXIT_FLOW_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
SERVICE_NAME = "flowexec-cli"
CLIENT = "cli"
# Upper bound on the final span flush: a dead trace backend may cost at most this long.
FLUSH_TIMEOUT_SECONDS = 1.5
# The CLI's OTLP export budget unless OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT says otherwise: below the SDK's
# first retry backoff (1 s +-20%), so a refused connection fails at once and a silent backend within 0.75 s.
OTLP_TIMEOUT_SECONDS = "0.75"
# Cancelling on Ctrl-C must not hang the exit either.
CANCEL_TIMEOUT_SECONDS = 5.0
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
STEP_DONE = frozenset({"succeeded", "failed", "cancelled", "skipped"})

EPILOG = """\
examples:
  flowexec run hello --input name=Ada          run and wait; print outputs, execution id and trace id
  flowexec run hello --input count:=3          KEY:=VALUE sends VALUE as JSON (number, bool, list...)
  flowexec run parallel --inputs-file in.json  inputs from a JSON object ('-' reads stdin)
  flowexec run slow --async                    submit, print the execution id, do not wait
  flowexec run slow --wait                     submit, show progress, print the result (Ctrl-C cancels)
  flowexec get 0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11
  flowexec cancel 0b7c9a52-3a4e-4a59-9d1f-6c2f1e3c6b11
  flowexec list --status failed --flow hello
  flowexec flows
  flowexec trace 4bf92f3577b34da6a3ce929d0e0e4736
  flowexec --json run hello | jq .outputs

environment:
  FLOWEXEC_URL, FLOWEXEC_TOKEN  defaults for --url and --token
  OTEL_*                        standard OpenTelemetry settings; by default the CLI exports its spans
                                over OTLP to {url}/v1/traces; OTEL_TRACES_EXPORTER=none turns that off

exit codes:
  0 ok, 1 flow failed, 2 usage or validation error, 3 service unreachable, timed out or auth refused,
  130 interrupted (a waited-on execution is cancelled first)
"""


class CliError(Exception):
    """A failure reported as one line on stderr with a specific exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Settings:
    """Connection and output options shared by every command."""

    url: str
    token: str | None
    request_id: str
    timeout: float
    json: bool
    verbose: bool
    # Who is calling: `manage.py runflow --remote` reuses this client as flowexec-manage / manage.
    service_name: str = SERVICE_NAME
    client: str = CLIENT

    @property
    def user_agent(self) -> str:
        return f"{self.service_name}/{__version__}"


# --------------------------------------------------------------------------- argument parsing


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print one line and exit with the usage error code."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command; SUPPRESS keeps a subcommand from resetting them."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"service URL (env FLOWEXEC_URL, default {DEFAULT_URL})"
    )
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (env FLOWEXEC_TOKEN)")
    common.add_argument(
        "--request-id",
        metavar="ID",
        default=argparse.SUPPRESS,
        help="X-Request-ID to send (default: a new UUID)",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
    common.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help=f"seconds to wait for the service or a waited-on execution (default {DEFAULT_TIMEOUT:g})",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show log messages on stderr"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """Build the argparse tree: global options plus one subparser per command."""
    common = _common_options()
    parser = _Parser(
        prog="flowexec",
        description="Run and inspect flows on a flowexec service; every command is traced (OpenTelemetry).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"flowexec-cli {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    run = add("run", "run a flow and print its outputs")
    run.add_argument("flow", metavar="FLOW", help="flow name")
    run.add_argument(
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input; repeatable; KEY:=VALUE parses VALUE as JSON",
    )
    run.add_argument("--inputs-file", metavar="FILE", help="JSON object of inputs ('-' for stdin)")
    run.add_argument("--async", dest="async_", action="store_true", help="submit and return without waiting")
    run.add_argument("--wait", action="store_true", help="submit, then poll until finished showing progress")

    add("get", "show one execution").add_argument("id", metavar="ID", help="execution id")
    add("cancel", "cancel a pending or running execution").add_argument("id", metavar="ID", help="execution id")
    listing = add("list", "list recent executions")
    listing.add_argument("--status", choices=sorted(FINISHED | {"pending", "running"}), help="filter by status")
    listing.add_argument("--flow", help="filter by flow name")
    add("flows", "list the stored flows")
    add("trace", "show a trace as an indented span tree").add_argument("trace_id", metavar="TRACE_ID")
    return parser


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str], *, service_name: str = SERVICE_NAME, client: str = CLIENT
) -> Settings:
    """Resolve options against the environment and validate them."""
    url = (getattr(args, "url", None) or environ.get("FLOWEXEC_URL") or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"invalid --url {url!r}: expected http://HOST[:PORT] or https://...", EXIT_USAGE)
    timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    if not timeout > 0:
        raise CliError(f"invalid --timeout {timeout:g}: expected a positive number of seconds", EXIT_USAGE)
    request_id = getattr(args, "request_id", None) or str(uuid.uuid4())
    if len(request_id) > 200 or not request_id.isprintable() or any(c.isspace() for c in request_id):
        raise CliError(f"invalid --request-id {request_id!r}: expected up to 200 visible characters", EXIT_USAGE)
    return Settings(
        url=url,
        token=getattr(args, "token", None) or environ.get("FLOWEXEC_TOKEN") or None,
        request_id=request_id,
        timeout=timeout,
        json=getattr(args, "json", False),
        verbose=getattr(args, "verbose", False),
        service_name=service_name,
        client=client,
    )


def parse_inputs(pairs: Sequence[str], inputs_file: str | None) -> dict[str, Any]:
    """Merge --inputs-file and --input KEY=VALUE / KEY:=JSON pairs (pairs win)."""
    inputs = _read_inputs_file(inputs_file) if inputs_file else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.rstrip(":"):
            raise CliError(f"invalid --input {pair!r}: expected KEY=VALUE or KEY:=JSON", EXIT_USAGE)
        if key.endswith(":"):
            key = key[:-1]
            try:
                inputs[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise CliError(
                    f"invalid --input {pair!r}: VALUE after ':=' is not JSON ({exc.msg})", EXIT_USAGE
                ) from exc
        else:
            inputs[key] = value
    return inputs


def _read_inputs_file(path: str) -> dict[str, Any]:
    """Read a JSON object of inputs from a file or stdin."""
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
        data = json.loads(text)
    except OSError as exc:
        raise CliError(f"cannot read --inputs-file {path!r}: {exc.strerror or exc}", EXIT_USAGE) from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"invalid --inputs-file {path!r}: not JSON ({exc.msg}, line {exc.lineno})", EXIT_USAGE) from exc
    if not isinstance(data, dict):
        raise CliError(f"invalid --inputs-file {path!r}: expected a JSON object", EXIT_USAGE)
    return data


def _check_arguments(args: argparse.Namespace) -> None:
    """Validate command arguments locally, before any network or tracing set-up."""
    if args.command in ("get", "cancel"):
        try:
            uuid.UUID(args.id)
        except ValueError as exc:
            raise CliError(f"invalid execution id {args.id!r}: expected a UUID", EXIT_USAGE) from exc
    if args.command == "trace":
        trace_id = args.trace_id.lower()
        if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id) or trace_id == "0" * 32:
            raise CliError(f"invalid trace id {args.trace_id!r}: expected 32 hex digits", EXIT_USAGE)
        args.trace_id = trace_id
    if args.command == "run":
        args.input_values = parse_inputs(args.inputs, args.inputs_file)


# --------------------------------------------------------------------------- HTTP


class ApiClient:
    """A tiny JSON client for the flowexec REST API; the one place HTTP outcomes become exit codes."""

    def __init__(self, settings: Settings) -> None:
        import urllib3

        self._urllib3 = urllib3
        self.base_url = settings.url
        self.timeout = settings.timeout
        self._headers = {
            "Accept": "application/json",
            "User-Agent": settings.user_agent,
            attrs.REQUEST_ID_HEADER: settings.request_id,
        }
        if settings.token:
            self._headers["Authorization"] = f"Token {settings.token}"
        self._pool = urllib3.PoolManager(retries=False)

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET a JSON resource."""
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        """POST a JSON body and return the JSON response."""
        return self.request("POST", path, body=body, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request with trace context and map failures to CliError."""
        from urllib.parse import urlencode

        from opentelemetry import propagate

        errors = self._urllib3.exceptions
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        headers = dict(self._headers)
        # traceparent/baggage from the CLI span; the urllib3 instrumentation re-injects its client span's.
        propagate.inject(headers)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        seconds = timeout or self.timeout
        try:
            response = self._pool.request(
                method, url, body=data, headers=headers, timeout=self._urllib3.Timeout(seconds), retries=False
            )
        except (
            errors.NewConnectionError,
            errors.NameResolutionError,
        ) as exc:  # before TimeoutError: a subclass
            raise CliError(f"cannot reach the service at {self.base_url}: {_reason(exc)}", EXIT_UNAVAILABLE) from exc
        except errors.TimeoutError as exc:
            raise CliError(
                f"timed out after {seconds:g}s waiting for {method} {self.base_url}{path} (see --timeout)",
                EXIT_UNAVAILABLE,
            ) from exc
        except errors.HTTPError as exc:
            raise CliError(f"cannot reach the service at {self.base_url}: {_reason(exc)}", EXIT_UNAVAILABLE) from exc
        return self._decode(response.status, response.data, method, path)

    def _decode(self, status: int, raw: bytes, method: str, path: str) -> Any:
        """Return the JSON body of a 2xx response; raise CliError with the right exit code otherwise."""
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
            if 200 <= status < 300:
                raise CliError(
                    f"not a JSON response ({status}) from {method} {self.base_url}{path}; check --url",
                    EXIT_UNAVAILABLE,
                ) from None
        if 200 <= status < 300:
            return data
        detail = describe_error_body(data) or (raw[:200].decode("utf-8", "replace").strip() or f"HTTP {status}")
        if status in (401, 403):
            hint = "" if "Authorization" in self._headers else "; set --token or FLOWEXEC_TOKEN"
            raise CliError(f"authentication refused by {self.base_url} ({status}): {detail}{hint}", EXIT_UNAVAILABLE)
        if status == 404:
            raise CliError(f"not found: {detail}", EXIT_USAGE)
        if status >= 500:
            raise CliError(f"service error {status} on {method} {path}: {detail}", EXIT_UNAVAILABLE)
        raise CliError(f"invalid request: {detail}", EXIT_USAGE)


def describe_error_body(data: Any) -> str:
    """Flatten a DRF error body ({"detail", "problems"} or per-field lists) to one line."""
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return "; ".join(describe_error_body(item) for item in data)
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    problems = data.get("problems")
    if data.get("detail") and not problems:
        parts.append(str(data["detail"]))
    if problems:
        parts.extend(str(p) for p in (problems if isinstance(problems, list) else [problems]))
    for key, value in data.items():
        if key not in ("detail", "problems"):
            parts.append(f"{key}: {describe_error_body(value) or value}")
    return "; ".join(parts)


def _reason(exc: BaseException) -> str:
    """The most specific human reason in an exception chain (e.g. 'Connection refused')."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    marker = "Failed to establish a new connection: "
    return text.split(marker, 1)[1] if marker in text else text


# --------------------------------------------------------------------------- tracing


@dataclass
class Tracing:
    """The CLI's tracer provider for one command; stop() flushes it within a bounded time."""

    enabled: bool

    @classmethod
    def start(cls, settings: Settings) -> Tracing:
        """Configure the provider (OTLP to the service by default, OTEL_* override) and instrument urllib3."""
        # Lazy: the SDK costs start-up time that `--help` and usage errors must not pay.
        from tracing.provider import configure_tracing

        headers = {"Authorization": f"Token {settings.token}"} if settings.token else None
        if not (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")):
            os.environ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = OTLP_TIMEOUT_SECONDS
        state = configure_tracing(
            settings.service_name,
            default_exporters="otlp",
            otlp_endpoint=f"{settings.url}/v1/traces",
            otlp_headers=headers,
        )
        if state.enabled:
            from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

            URLLib3Instrumentor().instrument()
        return cls(enabled=state.enabled)

    def stop(self) -> None:
        """Flush and shut down, giving up after FLUSH_TIMEOUT_SECONDS (a dead backend must not hang us)."""
        if self.enabled:
            # Lazy: as in start(), only a traced run pays for the SDK.
            from tracing.provider import flush_and_shutdown

            flush_and_shutdown(timeout_seconds=FLUSH_TIMEOUT_SECONDS)


@contextmanager
def command_span(command: str, settings: Settings, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """Root span `flowexec {command}` with baggage request_id and client=cli in the context."""
    from opentelemetry import baggage, context, trace

    ctx = baggage.set_baggage(attrs.REQUEST_ID, settings.request_id)
    ctx = baggage.set_baggage(attrs.CLIENT, settings.client, ctx)
    token = context.attach(ctx)
    try:
        tracer = trace.get_tracer(attrs.TRACER_NAME, __version__)
        span_attributes = {attrs.REQUEST_ID: settings.request_id, attrs.CLIENT: settings.client, **attributes}
        with tracer.start_as_current_span(attrs.CLI_SPAN.format(command=command), attributes=span_attributes) as span:
            yield span
    finally:
        context.detach(token)


def _mark_failed(span: Span, message: str) -> None:
    """Set ERROR status on the CLI span for outcomes that are not exceptions."""
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, message))


# --------------------------------------------------------------------------- commands


@dataclass
class Context:
    """What a command needs: settings, API client, root span, output streams."""

    settings: Settings
    api: ApiClient
    span: Span
    out: IO[str]
    err: IO[str]


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    """Submit an execution; wait for it (on the service, or by polling with --wait) and print the result."""
    waiting = args.wait or not args.async_
    body = {
        "flow": args.flow,
        "inputs": args.input_values,
        "wait": not (args.wait or args.async_),
        "client": ctx.settings.client,
    }
    execution: Mapping[str, Any] = {}
    try:
        execution = ctx.api.post("/api/executions/", body)
        _annotate(ctx.span, execution)
        if args.wait:
            execution = wait_for_execution(ctx, execution)
            _annotate(ctx.span, execution)
    except KeyboardInterrupt:
        if waiting:  # without an id yet (sync run), the service finds it by our request id
            _cancel_after_interrupt(ctx, execution.get("id"))
        raise
    return _report_execution(ctx, execution, submitted_only=not waiting)


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    """Print one execution."""
    ctx.span.set_attribute(attrs.FLOW_EXECUTION_ID, args.id)
    execution = ctx.api.get(f"/api/executions/{args.id}/")
    _annotate(ctx.span, execution)
    _print(ctx, execution, lambda: render_execution(execution, ctx.settings.url, steps=True))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    """Ask the service to cancel an execution."""
    ctx.span.set_attribute(attrs.FLOW_EXECUTION_ID, args.id)
    execution = ctx.api.post(f"/api/executions/{args.id}/cancel/")
    _annotate(ctx.span, execution)
    _print(ctx, execution, lambda: f"execution {execution.get('id', args.id)}: {execution.get('status')}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """List executions, newest first as the service orders them."""
    query = {key: value for key, value in (("status", args.status), ("flow", args.flow)) if value}
    page = ctx.api.get("/api/executions/", query=query)
    _print(ctx, page, lambda: render_executions(page))
    return EXIT_OK


def cmd_flows(args: argparse.Namespace, ctx: Context) -> int:
    """List stored flows."""
    page = ctx.api.get("/api/flows/")
    _print(ctx, page, lambda: render_flows(page))
    return EXIT_OK


def cmd_trace(args: argparse.Namespace, ctx: Context) -> int:
    """Print a stored trace as an indented tree."""
    data = ctx.api.get(f"/api/traces/{args.trace_id}/")
    _print(ctx, data, lambda: render_trace(data))
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "get": cmd_get,
    "cancel": cmd_cancel,
    "list": cmd_list,
    "flows": cmd_flows,
    "trace": cmd_trace,
}


def wait_for_execution(ctx: Context, execution: Mapping[str, Any]) -> Mapping[str, Any]:
    """Poll an execution until it finishes, bounded by --timeout, with progress on a terminal."""
    started = time.monotonic()
    deadline = started + ctx.settings.timeout
    progress = Progress(ctx.err, enabled=ctx.err.isatty() and not ctx.settings.json)
    interval = 0.1
    try:
        while execution.get("status") not in FINISHED:
            progress.update(execution, time.monotonic() - started)
            if time.monotonic() + interval > deadline:
                raise CliError(
                    f"timed out after {ctx.settings.timeout:g}s waiting for execution {execution['id']} "
                    f"(still {execution.get('status')}; see 'flowexec get {execution['id']}')",
                    EXIT_UNAVAILABLE,
                )
            time.sleep(interval)  # polling interval, not synchronisation
            interval = min(interval * 1.5, 1.0)
            execution = ctx.api.get(f"/api/executions/{execution['id']}/")
    finally:
        progress.close()
    return execution


def _cancel_after_interrupt(ctx: Context, execution_id: str | None) -> None:
    """Ctrl-C while waiting: ask the service to cancel, then report it in the exit message."""
    ids = [execution_id] if execution_id else []
    try:
        if not ids:
            query = {"request_id": ctx.settings.request_id}
            page = ctx.api.request("GET", "/api/executions/", query=query, timeout=CANCEL_TIMEOUT_SECONDS)
            ids = [e["id"] for e in page.get("results", []) if e.get("status") not in FINISHED]
        for each in ids:
            ctx.api.post(f"/api/executions/{each}/cancel/", timeout=CANCEL_TIMEOUT_SECONDS)
    except (CliError, KeyboardInterrupt) as exc:
        raise CliError(f"interrupted; could not cancel {', '.join(ids) or 'the execution'}", EXIT_INTERRUPTED) from exc
    if ids:
        raise CliError(f"interrupted; asked the service to cancel execution {', '.join(ids)}", EXIT_INTERRUPTED)
    raise CliError("interrupted", EXIT_INTERRUPTED)


def _annotate(span: Span, execution: Any) -> None:
    """Copy the execution's id and flow onto the CLI span."""
    if isinstance(execution, Mapping):
        if execution.get("id"):
            span.set_attribute(attrs.FLOW_EXECUTION_ID, str(execution["id"]))
        if execution.get("flow"):
            span.set_attribute(attrs.FLOW_NAME, str(execution["flow"]))


def _report_execution(ctx: Context, execution: Mapping[str, Any], *, submitted_only: bool) -> int:
    """Print an execution and choose the exit code from its status."""
    _print(ctx, execution, lambda: render_execution(execution, ctx.settings.url, steps=False))
    status = execution.get("status")
    if submitted_only and not ctx.settings.json and status not in FINISHED:
        print(f"follow it with:  flowexec get {execution.get('id')}", file=ctx.out)
    if submitted_only or status == "succeeded":
        return EXIT_OK
    message = f"execution {execution.get('id')} of flow {execution.get('flow')!r} {status}"
    if execution.get("error"):
        message += f": {execution['error']}"
    _mark_failed(ctx.span, message)
    print(f"flowexec: {_one_line(message)}", file=ctx.err)
    return EXIT_FLOW_FAILED


def _print(ctx: Context, data: Any, human: Any) -> None:
    """Print raw JSON with --json, else the human rendering."""
    text = json.dumps(data, indent=2, sort_keys=True) if ctx.settings.json else human()
    print(text, file=ctx.out)


# --------------------------------------------------------------------------- rendering


class Progress:
    """One self-overwriting status line on a terminal; silent when not a TTY."""

    def __init__(self, stream: IO[str], *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.shown = False

    def update(self, execution: Mapping[str, Any], elapsed: float) -> None:
        """Redraw the line: flow, status, steps done / total, elapsed."""
        if not self.enabled:
            return
        self.stream.write("\r\033[K" + progress_line(execution, elapsed))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """Erase the line so the result prints cleanly."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def progress_line(execution: Mapping[str, Any], elapsed: float) -> str:
    """Text of the progress line."""
    steps = execution.get("steps") or []
    done = sum(1 for step in steps if step.get("status") in STEP_DONE)
    total = execution.get("step_count") or len(steps)
    return f"{execution.get('flow')}: {execution.get('status')}, {done}/{total} steps, {elapsed:.1f}s elapsed"


def render_execution(execution: Mapping[str, Any], base_url: str, *, steps: bool) -> str:
    """Human view of an execution: status, outputs, ids, and where to see the trace."""
    duration = execution.get("duration_ms")
    took = f" in {_ms(duration)}" if duration is not None else ""
    version = f" v{execution['flow_version']}" if execution.get("flow_version") is not None else ""
    flow = f"{execution.get('flow')}{version}"
    lines = [f"execution {execution.get('id')}  {execution.get('status')}{took}  (flow {flow})"]
    if execution.get("error"):
        lines.append(f"error: {execution['error']}")
    if execution.get("outputs") not in (None, {}):
        lines.append("outputs:")
        lines.extend("  " + line for line in json.dumps(execution["outputs"], indent=2, sort_keys=True).splitlines())
    if steps or execution.get("status") == "failed":
        lines.extend(_step_lines(execution.get("steps") or []))
    lines.extend(_where_lines(execution, base_url))
    return "\n".join(lines)


def _step_lines(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per step run."""
    if not steps:
        return []
    lines = ["steps:"]
    for step in steps:
        line = f"  {step.get('name')}  {step.get('status')}"
        if (step.get("attempts") or 1) > 1:
            line += f"  ({step['attempts']} attempts)"
        if step.get("error"):
            line += f"  {_one_line(str(step['error']))}"
        lines.append(line)
    return lines


def _where_lines(execution: Mapping[str, Any], base_url: str) -> list[str]:
    """Execution id, trace id, request id and the places to look at the trace."""
    links = execution.get("links") or {}
    trace_id = execution.get("trace_id")
    lines = [f"execution id: {execution.get('id')}"]
    if trace_id:
        lines.append(f"trace id:     {trace_id}")
    if execution.get("request_id"):
        lines.append(f"request id:   {execution['request_id']}")
    if links.get("admin"):
        lines.append(f"admin:        {links['admin']}")
    if links.get("trace_ui"):
        lines.append(f"trace UI:     {links['trace_ui']}")
    if trace_id:
        lines.append(f"span tree:    flowexec --url {base_url} trace {trace_id}")
    return lines


def render_executions(page: Mapping[str, Any]) -> str:
    """Table of executions with a count footer."""
    rows = [
        (
            str(e.get("id")),
            str(e.get("flow")),
            str(e.get("status")),
            _ms(e.get("duration_ms")) if e.get("duration_ms") is not None else "-",
            str(e.get("created_at") or "-"),
            str(e.get("trace_id") or "-"),
        )
        for e in page.get("results", [])
    ]
    if not rows:
        return "no executions"
    table = _table(("ID", "FLOW", "STATUS", "DURATION", "CREATED", "TRACE ID"), rows)
    count = page.get("count", len(rows))
    return table + (f"\n({len(rows)} of {count}; filter with --status/--flow)" if count > len(rows) else "")


def render_flows(page: Mapping[str, Any]) -> str:
    """Table of flows."""
    items = page.get("results", page) if isinstance(page, Mapping) else page
    rows = [(str(f.get("name")), str(f.get("version")), str(f.get("description") or "")) for f in items]
    return _table(("NAME", "VERSION", "DESCRIPTION"), rows) if rows else "no flows"


def render_trace(data: Mapping[str, Any]) -> str:
    """Indented span tree: name, service, kind, duration, and errors."""
    roots = sorted(data.get("spans") or [], key=lambda s: str(s.get("start_time") or ""))
    if not roots:
        return f"trace {data.get('trace_id')}: no spans stored (yet)"
    lines = [f"trace {data.get('trace_id')}"]
    for root in roots:
        _render_span(root, 1, lines)
    return "\n".join(lines)


def _render_span(span: Mapping[str, Any], depth: int, lines: list[str]) -> None:
    """Append one span line and then its children, depth-first in start order."""
    kind = str(span.get("kind") or "").lower().removeprefix("spankind.")
    line = f"{'  ' * depth}{span.get('name')}  [{span.get('service_name') or '?'}]"
    if kind and kind != "internal":
        line += f"  {kind}"
    if span.get("duration_ms") is not None:
        line += f"  {_ms(span['duration_ms'])}"
    status = span.get("status")
    status_code = status.get("code") if isinstance(status, Mapping) else status
    if "ERROR" in str(status_code).upper():
        message = span.get("status_message") or (status.get("message") if isinstance(status, Mapping) else "")
        line += f"  ERROR{': ' + _one_line(str(message)) if message else ''}"
    lines.append(line)
    for child in sorted(span.get("children") or [], key=lambda s: str(s.get("start_time") or "")):
        _render_span(child, depth + 1, lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)
    )


def _ms(value: Any) -> str:
    """Format milliseconds compactly."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{ms / 1000:.2f} s" if ms >= 10_000 else f"{ms:.1f} ms"


def _one_line(text: str) -> str:
    """Collapse whitespace so an error stays on one line."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- entry point


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


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one command inside its root span, then flush the spans (bounded)."""
    tracing = Tracing.start(settings)
    try:
        attributes = {attrs.FLOW_NAME: args.flow} if args.command == "run" else {}
        with command_span(args.command, settings, attributes) as span:
            ctx = Context(settings=settings, api=ApiClient(settings), span=span, out=sys.stdout, err=sys.stderr)
            return COMMANDS[args.command](args, ctx)
    finally:
        tracing.stop()


def main(argv: Sequence[str] | None = None, *, service_name: str = SERVICE_NAME, client: str = CLIENT) -> int:
    """Parse arguments, run the command, and turn every failure into one stderr line and an exit code."""
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    _configure_logging(verbose)
    try:
        settings = settings_from_args(args, os.environ, service_name=service_name, client=client)
        _check_arguments(args)
        return run_command(args, settings)
    except CliError as exc:
        print(f"flowexec: {_one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("flowexec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the CLI boundary: one clear line instead of a traceback (-v adds it)
        if verbose:
            import traceback

            traceback.print_exc()
        print(f"flowexec: unexpected error: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_FLOW_FAILED


if __name__ == "__main__":
    sys.exit(main())

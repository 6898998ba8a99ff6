"""One function per command: API calls in, rendered output and an exit code out."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from flowexec.cli import flowfiles, render
from flowexec.cli.client import ApiClient, RequestTimeout
from flowexec.cli.config import Settings
from flowexec.cli.errors import EXIT_FLOW_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNAVAILABLE, CliError
from flowexec.cli.render import FINISHED
from flowexec.cli.telemetry import mark_failed
from tracing import attributes as attrs

if TYPE_CHECKING:
    from opentelemetry.trace import Span

# Cancelling on Ctrl-C must not hang the exit either.
CANCEL_TIMEOUT_SECONDS = 5.0
# Following a long run survives a service restart or a proxy's 502: this many failed polls in a row end it.
POLL_ATTEMPTS = 5
MAX_PAGE_SIZE = 200


@dataclass
class Context:
    """What a command needs: settings, API client, root span, output streams."""

    settings: Settings
    api: ApiClient
    span: Span
    out: IO[str]
    err: IO[str]

    def show(self, data: Any, human: Callable[[], str]) -> None:
        """Print raw JSON with --json, else the human rendering."""
        render.print_json_or(self.out, data, human, as_json=self.settings.json)

    def progress(self) -> render.Progress:
        """A progress line on stderr when it is a terminal and output is for humans."""
        return render.Progress(self.err, enabled=self.err.isatty() and not self.settings.json)


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    """Submit an execution and, unless --detach, follow it to the end."""
    detach = args.detach and not args.follow
    # With a progress line to draw, poll from the start; otherwise let the service wait (one request).
    body = {
        "flow": args.flow,
        "inputs": args.input_values,
        "wait": not detach and not ctx.progress().enabled,
        "client": ctx.settings.client,
    }
    execution: Mapping[str, Any] = {}
    try:
        execution = _submit(ctx, body)
        _annotate(ctx.span, execution)
        if detach:
            ctx.show(execution, lambda: render.render_execution(execution, ctx.settings.url, steps=False))
            if not ctx.settings.json:
                print(f"follow it with:  flowexec watch {execution.get('id')}", file=ctx.out)
            return EXIT_OK
        execution = follow(ctx, execution, hint="Ctrl-C cancels it")
    except KeyboardInterrupt:
        if not detach:  # without an id yet (sync run), the service finds it by our request id
            _cancel_after_interrupt(ctx, execution.get("id"))
        raise
    return report(ctx, execution)


def _submit(ctx: Context, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """POST the execution; if the answer does not come within --timeout, find it by our request id."""
    try:
        return ctx.api.post("/api/executions/", body)
    except RequestTimeout as timed_out:
        found = _by_request_id(ctx)
        if not found:
            raise CliError(
                f"{timed_out.message}; no execution with request id {ctx.settings.request_id}", EXIT_UNAVAILABLE
            ) from timed_out
        return found[0]


def _by_request_id(ctx: Context) -> list[Mapping[str, Any]]:
    """Executions the service stored for this run's request id, newest first."""
    page = ctx.api.get("/api/executions/", {"request_id": ctx.settings.request_id}, timeout=CANCEL_TIMEOUT_SECONDS)
    return list(page.get("results", [])) if isinstance(page, Mapping) else []


def follow(ctx: Context, execution: Mapping[str, Any], *, hint: str) -> Mapping[str, Any]:
    """Poll an unfinished execution until it ends, however long that takes; its id goes to stderr first."""
    if execution.get("status") in FINISHED:
        return execution
    execution_id = execution["id"]
    print(
        f"flowexec: execution {execution_id} {execution.get('status')}; following it "
        f"({hint}; 'flowexec watch {execution_id}' follows it again)",
        file=ctx.err,
        flush=True,
    )
    started = time.monotonic()
    progress = ctx.progress()
    interval, failures = 0.1, 0
    try:
        while execution.get("status") not in FINISHED:
            progress.update(execution, time.monotonic() - started)
            time.sleep(interval)  # polling interval, not synchronisation
            interval = min(interval * 1.5, 1.0)
            try:
                execution = ctx.api.get(f"/api/executions/{execution_id}/")
                failures = 0
            except CliError as exc:
                failures += 1
                if exc.exit_code != EXIT_UNAVAILABLE or failures >= POLL_ATTEMPTS:
                    raise CliError(f"{exc.message} (following execution {execution_id})", exc.exit_code) from exc
    finally:
        progress.close()
    _annotate(ctx.span, execution)
    return execution


def report(ctx: Context, execution: Mapping[str, Any]) -> int:
    """Print a finished execution; exit 0 if it succeeded, 1 if it failed or was cancelled."""
    ctx.show(execution, lambda: render.render_execution(execution, ctx.settings.url, steps=False))
    status = execution.get("status")
    if status == "succeeded":
        return EXIT_OK
    message = f"execution {execution.get('id')} of flow {execution.get('flow')!r} {status}"
    if execution.get("error"):
        message += f": {execution['error']}"
    mark_failed(ctx.span, message)
    print(f"flowexec: {render.one_line(message)}", file=ctx.err)
    return EXIT_FLOW_FAILED


def _cancel_after_interrupt(ctx: Context, execution_id: str | None) -> None:
    """Ctrl-C while following: ask the service to cancel, then report it in the exit message."""
    ids = [execution_id] if execution_id else []
    try:
        if not ids:
            ids = [e["id"] for e in _by_request_id(ctx) if e.get("status") not in FINISHED]
        for each in ids:
            ctx.api.post(f"/api/executions/{each}/cancel/", timeout=CANCEL_TIMEOUT_SECONDS)
    except (CliError, KeyboardInterrupt) as exc:
        raise CliError(f"interrupted; could not cancel {', '.join(ids) or 'the execution'}", EXIT_INTERRUPTED) from exc
    if ids:
        raise CliError(f"interrupted; asked the service to cancel execution {', '.join(ids)}", EXIT_INTERRUPTED)
    raise CliError("interrupted", EXIT_INTERRUPTED)


def cmd_watch(args: argparse.Namespace, ctx: Context) -> int:
    """Follow an existing execution to the end; output and exit code as `run`."""
    ctx.span.set_attribute(attrs.FLOW_EXECUTION_ID, args.id)
    execution = ctx.api.get(f"/api/executions/{args.id}/")
    _annotate(ctx.span, execution)
    try:
        execution = follow(ctx, execution, hint="Ctrl-C stops watching, not the execution")
    except KeyboardInterrupt:
        raise CliError(f"interrupted; execution {args.id} keeps running", EXIT_INTERRUPTED) from None
    return report(ctx, execution)


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    """Print one execution."""
    ctx.span.set_attribute(attrs.FLOW_EXECUTION_ID, args.id)
    execution = ctx.api.get(f"/api/executions/{args.id}/")
    _annotate(ctx.span, execution)
    ctx.show(execution, lambda: render.render_execution(execution, ctx.settings.url, steps=True))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    """Ask the service to cancel an execution."""
    ctx.span.set_attribute(attrs.FLOW_EXECUTION_ID, args.id)
    execution = ctx.api.post(f"/api/executions/{args.id}/cancel/")
    _annotate(ctx.span, execution)
    ctx.show(execution, lambda: f"execution {execution.get('id', args.id)}: {execution.get('status')}")
    return EXIT_OK


def _created(execution: Mapping[str, Any]) -> datetime | None:
    """When the execution was created (None if the API did not say)."""
    try:
        moment = datetime.fromisoformat(str(execution.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """List executions newest first, following the API's pages up to --limit."""
    filters = {
        "status": args.status,
        "flow": args.flow,
        "request_id": args.filter_request_id,
        "trace_id": args.trace_id,
        "client": args.client,
        "since": args.since_time.isoformat() if args.since_time else None,
    }
    query = {key: value for key, value in filters.items() if value}
    # One page holds the whole --limit where the API allows it (its cursor pages take up to 200).
    query["page_size"] = str(min(args.limit, MAX_PAGE_SIZE))
    found, more = _collect(ctx.api.pages("/api/executions/", query), args.limit, args.since_time)
    ctx.show({"results": found, "more": more}, lambda: render.render_executions(found, more=more))
    return EXIT_OK


def _collect(
    pages: Iterator[Mapping[str, Any]], limit: int, since: datetime | None
) -> tuple[list[Mapping[str, Any]], bool]:
    """Up to `limit` executions from newest-first pages, requesting no page more than needed; (items, more)."""
    found: list[Mapping[str, Any]] = []
    for page in pages:
        for execution in page.get("results", []):
            created = _created(execution)
            if since and created and created < since:
                # Newest first: the rest is older still (so --since holds even where the API ignores it).
                return found, False
            if len(found) == limit:
                return found, True
            found.append(execution)
        if len(found) == limit:
            return found, bool(page.get("next"))
    return found, False


def cmd_flows(args: argparse.Namespace, ctx: Context) -> int:
    """List stored flows, or apply definition files."""
    if args.flows_command == "apply":
        return flowfiles.apply(ctx.api, args.paths, out=ctx.out, err=ctx.err, as_json=ctx.settings.json)
    flows = [flow for page in ctx.api.pages("/api/flows/") for flow in _results(page)]
    ctx.show({"results": flows}, lambda: render.render_flows(flows))
    return EXIT_OK


def _results(page: Any) -> list[Any]:
    """The items of a list response, paginated or not."""
    return list(page.get("results", [])) if isinstance(page, Mapping) else list(page or [])


def cmd_trace(args: argparse.Namespace, ctx: Context) -> int:
    """Print a stored trace as an indented tree."""
    data = ctx.api.get(f"/api/traces/{args.trace_id}/")
    ctx.show(data, lambda: render.render_trace(data))
    return EXIT_OK


def _annotate(span: Span, execution: Any) -> None:
    """Copy the execution's id and flow onto the CLI span."""
    if isinstance(execution, Mapping):
        if execution.get("id"):
            span.set_attribute(attrs.FLOW_EXECUTION_ID, str(execution["id"]))
        if execution.get("flow"):
            span.set_attribute(attrs.FLOW_NAME, str(execution["flow"]))


COMMANDS: dict[str, Callable[[argparse.Namespace, Context], int]] = {
    "run": cmd_run,
    "watch": cmd_watch,
    "get": cmd_get,
    "cancel": cmd_cancel,
    "list": cmd_list,
    "flows": cmd_flows,
    "trace": cmd_trace,
}

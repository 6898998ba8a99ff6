"""Human renderings of API data: executions, lists, flows, span trees, and the progress line."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import IO, Any

from tracing import attributes as attrs

FINISHED = frozenset({"succeeded", "failed", "cancelled"})


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
    done = sum(1 for step in steps if step.get("status") in FINISHED)
    total = execution.get("step_count") or len(steps)
    return f"{execution.get('flow')}: {execution.get('status')}, {done}/{total} steps, {elapsed:.1f}s elapsed"


def render_execution(execution: Mapping[str, Any], base_url: str, *, steps: bool) -> str:
    """Human view of an execution: status, outputs, ids, and where to see the trace."""
    duration = execution.get("duration_ms")
    took = f" in {ms(duration)}" if duration is not None else ""
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
            line += f"  {one_line(str(step['error']))}"
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


def render_executions(executions: Sequence[Mapping[str, Any]], *, more: bool) -> str:
    """Table of executions; says so when the list was cut at --limit."""
    rows = [
        (
            str(e.get("id")),
            str(e.get("flow")),
            str(e.get("status")),
            ms(e.get("duration_ms")) if e.get("duration_ms") is not None else "-",
            str(e.get("created_at") or "-"),
            str(e.get("trace_id") or "-"),
        )
        for e in executions
    ]
    if not rows:
        return "no executions"
    table = _table(("ID", "FLOW", "STATUS", "DURATION", "CREATED", "TRACE ID"), rows)
    return table + (f"\n(first {len(rows)}; more match: raise --limit or add filters)" if more else "")


def render_flows(flows: Sequence[Mapping[str, Any]]) -> str:
    """Table of flows."""
    rows = [(str(f.get("name")), str(f.get("version")), str(f.get("description") or "")) for f in flows]
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
        line += f"  {ms(span['duration_ms'])}"
    if "ERROR" in str(span.get("status")).upper():
        message = span.get("status_message")
        line += f"  ERROR{': ' + one_line(str(message)) if message else ''}"
    if (span.get("attributes") or {}).get(attrs.SPAN_RUNNING) is True:
        line += "  running"
    lines.append(line)
    for child in sorted(span.get("children") or [], key=lambda s: str(s.get("start_time") or "")):
        _render_span(child, depth + 1, lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)
    )


def ms(value: Any) -> str:
    """Format milliseconds compactly."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number / 1000:.2f} s" if number >= 10_000 else f"{number:.1f} ms"


def one_line(text: str) -> str:
    """Collapse whitespace so an error stays on one line."""
    return " ".join(text.split())


def print_json_or(out: IO[str], data: Any, human: Any, *, as_json: bool) -> None:
    """Print raw JSON with --json, else the human rendering (a callable, so JSON mode skips it)."""
    print(json.dumps(data, indent=2, sort_keys=True) if as_json else human(), file=out)

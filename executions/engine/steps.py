"""Step types: the fields each accepts, how they are checked, and how a step runs."""

from __future__ import annotations

import codecs
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin

import urllib3

from .definition import EngineConfig, StepSpec
from .errors import ExecutionCancelled, FlowError, StepError, StepTimeout
from .hooks import RunHooks
from .references import stringify

COMMON_FIELDS = frozenset({"name", "type", "after", "timeout", "retries", "description"})
FLOW_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
MAX_SLEEP_SECONDS = 300
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_TEXT_CHARS = 64 * 1024
CROSS_HOST_DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

# One pool for the process: PoolManager is thread-safe, and retries/redirects are ours to decide.
http_pool = urllib3.PoolManager(num_pools=16, maxsize=8, retries=False)


@dataclass(frozen=True)
class StepContext:
    """What a running attempt may use besides its resolved fields."""

    step: StepSpec
    config: EngineConfig
    hooks: RunHooks
    depth: int
    timeout: float | None
    stop: threading.Event  # set when the attempt timed out or the run was cancelled
    cancelled: threading.Event  # set when the run was cancelled

    def fail(self, message: str) -> StepError:
        """Build a StepError naming this step."""
        return StepError(self.step.name, message)


class StepType(Protocol):
    """A kind of step: its fields (name -> required), their checks, and its execution."""

    fields: Mapping[str, bool]

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """Return problems with the type-specific fields; unresolved references pass unless `resolved`."""

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Run the step with resolved fields and return its output."""


def _dynamic(value: Any, resolved: bool) -> bool:
    """True when a value still holds a `${...}` reference, so only run time can check it."""
    return not resolved and isinstance(value, str) and "${" in value


def _is_number(value: Any) -> bool:
    """True for ints and floats, not bools."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_string(fields: Mapping[str, Any], name: str) -> list[str]:
    """The field, when present, must be a string."""
    if name in fields and not isinstance(fields[name], str):
        return [f'"{name}" must be a string']
    return []


def _check_object(fields: Mapping[str, Any], name: str, resolved: bool) -> list[str]:
    """The field, when present, must be an object (or a reference to one)."""
    value = fields.get(name)
    if name in fields and not isinstance(value, Mapping) and not _dynamic(value, resolved):
        return [f'"{name}" must be an object']
    return []


class TemplateStep:
    """Substitute references into a string; output is always a string."""

    fields: Mapping[str, bool] = {"template": True}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`template` must be a string as written; a reference in it may resolve to anything."""
        return [] if resolved else _check_string(fields, "template")

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Return the substituted template."""
        return stringify(fields["template"])


class PythonStep:
    """Call a function from the allowlist registry with keyword arguments."""

    fields: Mapping[str, bool] = {"function": True, "args": False}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`function` must be a registered name, `args` an object."""
        problems = _check_object(fields, "args", resolved)
        function = fields.get("function")
        if not isinstance(function, str):
            problems.append('"function" must be a string')
        elif function not in config.python_functions:
            problems.append(f'unknown function "{function}"')
        return problems

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Call the function."""
        function = context.config.python_functions[fields["function"]]
        return function(**fields.get("args", {}))


class SleepStep:
    """Wait, waking early when the attempt times out or the run is cancelled."""

    fields: Mapping[str, bool] = {"seconds": True}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`seconds` must be a number between 0 and MAX_SLEEP_SECONDS."""
        seconds = fields.get("seconds")
        if _dynamic(seconds, resolved) or "seconds" not in fields:
            return []
        if not _is_number(seconds):
            return ['"seconds" must be a number']
        if not 0 <= seconds <= MAX_SLEEP_SECONDS:
            return [f'"seconds" must be between 0 and {MAX_SLEEP_SECONDS}']
        return []

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Wait on the stop event rather than sleeping, so the thread is released early."""
        if context.stop.wait(fields["seconds"]):
            if context.cancelled.is_set():
                raise ExecutionCancelled()
            raise StepTimeout(context.step.name, f"timed out after {context.timeout:g}s")
        return None


class FailStep:
    """Fail on purpose, to exercise error paths."""

    fields: Mapping[str, bool] = {"message": False}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`message` must be a string."""
        return _check_string(fields, "message")

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Raise a StepError with the message."""
        raise context.fail(fields.get("message") or "failed")


class FlowStep:
    """Run another flow through the caller's hooks, one level deeper."""

    fields: Mapping[str, bool] = {"flow": True, "inputs": False}

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """`flow` must be a flow name, `inputs` an object."""
        problems = _check_object(fields, "inputs", resolved)
        flow = fields.get("flow")
        if "flow" in fields and not _dynamic(flow, resolved):
            if not isinstance(flow, str):
                problems.append('"flow" must be a string')
            elif not FLOW_NAME.fullmatch(flow):
                problems.append(f'"flow" is not a valid flow name: "{flow}"')
        return problems

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Return the sub-flow's outputs."""
        depth = context.depth + 1
        if depth > context.config.max_depth:
            raise context.fail(
                f'sub-flow "{fields["flow"]}" would nest {depth} levels deep (max {context.config.max_depth})'
            )
        try:
            return dict(context.hooks.run_subflow(fields["flow"], fields.get("inputs", {}), depth))
        except StepError:
            raise
        except FlowError as exc:
            raise context.fail(str(exc)) from exc


class HttpStep:
    """Call an allowlisted host with urllib3, following redirects by hand."""

    fields: Mapping[str, bool] = {
        "method": False,
        "url": True,
        "headers": False,
        "json": False,
        "body": False,
    }

    def check(self, fields: Mapping[str, Any], config: EngineConfig, *, resolved: bool) -> list[str]:
        """Method, url, headers and body must be well-formed; hosts are checked when the step runs."""
        problems = _check_string(fields, "url") + _check_string(fields, "body")
        method = fields.get("method", "GET")
        if not _dynamic(method, resolved) and (not isinstance(method, str) or method.upper() not in HTTP_METHODS):
            problems.append(f'"method" must be one of {", ".join(sorted(HTTP_METHODS))}')
        headers = fields.get("headers", {})
        if not _dynamic(headers, resolved) and (
            not isinstance(headers, Mapping) or not all(isinstance(value, str) for value in headers.values())
        ):
            problems.append('"headers" must be an object of strings')
        if "json" in fields and "body" in fields:
            problems.append('"json" and "body" are mutually exclusive')
        return problems

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Send the request; the output is {"status", "json"} or {"status", "text"}; 4xx/5xx fail the step."""
        method = fields.get("method", "GET").upper()
        url = fields["url"]
        headers = dict(fields.get("headers", {}))
        body: bytes | None = None
        if "json" in fields:
            body = json.dumps(fields["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        elif "body" in fields:
            body = fields["body"].encode()
        host = _allowed_host(url, context)
        for _ in range(MAX_REDIRECTS + 1):
            response = _send(method, url, headers, body, context)
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return _output(url, response, context)
            response.drain_conn()
            url = urljoin(url, location)
            next_host = _allowed_host(url, context)
            if next_host != host:
                headers = _without(headers, CROSS_HOST_DROPPED_HEADERS)
                host = next_host
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                body = None
                headers = _without(headers, {"content-type"})
        raise context.fail(f"too many redirects (more than {MAX_REDIRECTS})")


def _without(headers: Mapping[str, str], names: frozenset[str] | set[str]) -> dict[str, str]:
    """Return the headers minus those named (case-insensitive)."""
    return {key: value for key, value in headers.items() if key.lower() not in names}


def _allowed_host(url: str, context: StepContext) -> str:
    """Return the url's host[:port] when the allowlist permits it; fail the step otherwise."""
    try:
        parsed = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError as exc:
        raise context.fail(f'invalid url "{url}"') from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise context.fail(f'url must be absolute http(s): "{url}"')
    host = parsed.host.lower()
    allowed = {entry.lower() for entry in context.config.http_allowed_hosts}
    address = f"{host}:{parsed.port}" if parsed.port else host
    if host not in allowed and address not in allowed:
        raise context.fail(f'host "{host}" is not in the allowed hosts')
    return address


def _send(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None, context: StepContext
) -> urllib3.BaseHTTPResponse:
    """Make one request without following redirects."""
    try:
        return http_pool.request(
            method,
            url,
            headers=dict(headers),
            body=body,
            redirect=False,
            retries=False,
            timeout=urllib3.Timeout(total=context.timeout),
            preload_content=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise context.fail(f"{method} {url} failed: {exc}") from exc


def _output(url: str, response: urllib3.BaseHTTPResponse, context: StepContext) -> dict[str, Any]:
    """Read a capped body and shape the step output; fail on error statuses."""
    data = response.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        response.close()
    else:
        response.release_conn()
    content_type = response.headers.get("Content-Type", "")
    text = data[:MAX_RESPONSE_BYTES].decode(_charset(content_type), errors="replace")
    if response.status >= 400:
        raise context.fail(f"HTTP {response.status} from {url}: {text[:200]}")
    if "json" in content_type.lower() and len(data) <= MAX_RESPONSE_BYTES:
        try:
            return {"status": response.status, "json": json.loads(text)}
        except ValueError:
            pass  # a server mislabelling text as JSON still gets its text recorded
    return {"status": response.status, "text": text[:MAX_TEXT_CHARS]}


def _charset(content_type: str) -> str:
    """Return the charset named in a Content-Type, utf-8 by default."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                return codecs.lookup(value.strip('"')).name
            except LookupError:
                break
    return "utf-8"


STEP_TYPES: Mapping[str, StepType] = {
    "template": TemplateStep(),
    "python": PythonStep(),
    "http": HttpStep(),
    "sleep": SleepStep(),
    "flow": FlowStep(),
    "fail": FailStep(),
}

"""The flowexec REST API over urllib3: the one place HTTP outcomes become CLI errors and exit codes."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from flowexec.cli.config import Settings
from flowexec.cli.errors import EXIT_UNAVAILABLE, EXIT_USAGE, CliError
from flowexec.cli.telemetry import http_client_span
from tracing import attributes as attrs


class RequestTimeout(CliError):
    """The service accepted the connection but did not answer within the timeout."""


class ApiClient:
    """A tiny JSON client for the flowexec REST API."""

    def __init__(self, settings: Settings) -> None:
        # Lazy: `--help` and usage errors must not pay for importing urllib3.
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
        # Shared with the CLI's span exporter: its export to the service's /v1/traces reuses our connection.
        self.pool = urllib3.PoolManager(retries=False)

    def get(self, path: str, query: Mapping[str, str] | None = None, *, timeout: float | None = None) -> Any:
        """GET a JSON resource."""
        return self.exchange("GET", path, query=query, timeout=timeout)[1]

    def post(self, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        """POST a JSON body and return the JSON response."""
        return self.exchange("POST", path, body=body, timeout=timeout)[1]

    def pages(self, path: str, query: Mapping[str, str] | None = None) -> Iterator[Mapping[str, Any]]:
        """Each page of a paginated list, following `next` links (cursor or page number alike)."""
        page = self.get(path, query)
        yield page
        while isinstance(page, Mapping) and page.get("next"):
            # Only the path and query of `next`: the token never goes to a host the service names.
            link = urlsplit(str(page["next"]))
            page = self.get(link.path + (f"?{link.query}" if link.query else ""))
            yield page

    def exchange(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
        timeout: float | None = None,
        accept: Collection[int] = (),
    ) -> tuple[int, Any]:
        """Send one request in its CLIENT span with trace context; (status, JSON body) of a 2xx or `accept`ed status."""
        # Lazy: `--help` and usage errors import no OpenTelemetry.
        from opentelemetry import propagate

        errors = self._urllib3.exceptions
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        headers = dict(self._headers)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        seconds = timeout or self.timeout
        with http_client_span(method, url) as span:
            # traceparent/baggage of the client span (or of the urllib3 instrumentation's, which re-injects).
            propagate.inject(headers)
            try:
                response = self.pool.request(
                    method, url, body=data, headers=headers, timeout=self._urllib3.Timeout(seconds), retries=False
                )
            except errors.HTTPError as exc:
                span.failed(exc)
                raise self._unreachable(exc, method, path, seconds) from exc
            span.answered(response.status)
        return response.status, self._decode(response.status, response.data, method, path, accept)

    def _unreachable(self, exc: Exception, method: str, path: str, seconds: float) -> CliError:
        """The CliError for a request that got no response."""
        errors = self._urllib3.exceptions
        if isinstance(exc, errors.NewConnectionError | errors.NameResolutionError):  # before TimeoutError: a subclass
            return CliError(f"cannot reach the service at {self.base_url}: {_reason(exc)}", EXIT_UNAVAILABLE)
        if isinstance(exc, errors.TimeoutError):
            return RequestTimeout(
                f"timed out after {seconds:g}s waiting for {method} {self.base_url}{path} (see --timeout)",
                EXIT_UNAVAILABLE,
            )
        return CliError(f"cannot reach the service at {self.base_url}: {_reason(exc)}", EXIT_UNAVAILABLE)

    def _decode(self, status: int, raw: bytes, method: str, path: str, accept: Collection[int]) -> Any:
        """The JSON body of a 2xx (or accepted) response; CliError with the right exit code otherwise."""
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
            if 200 <= status < 300:
                raise CliError(
                    f"not a JSON response ({status}) from {method} {self.base_url}{path}; check --url",
                    EXIT_UNAVAILABLE,
                ) from None
        if 200 <= status < 300 or status in accept:
            return data
        detail = describe_error_body(data) or (raw[:200].decode("utf-8", "replace").strip() or f"HTTP {status}")
        if status == 401 or (status == 403 and "Authorization" not in self._headers):
            hint = "" if "Authorization" in self._headers else "; set --token, FLOWEXEC_TOKEN or the config file"
            raise CliError(f"authentication refused by {self.base_url} ({status}): {detail}{hint}", EXIT_UNAVAILABLE)
        if status == 403:
            raise CliError(f"permission denied by {self.base_url} ({status}): {detail}", EXIT_UNAVAILABLE)
        if status == 404:
            raise CliError(f"not found: {detail}", EXIT_USAGE)
        if status >= 500:
            raise CliError(f"service error {status} on {method} {path}: {detail}", EXIT_UNAVAILABLE)
        raise CliError(f"invalid request: {detail}", EXIT_USAGE)


def problems_of(data: Any) -> list[str]:
    """The problems of a DRF error body, one per entry ({"problems": [...]}, else the flattened body)."""
    if isinstance(data, Mapping) and isinstance(data.get("problems"), list):
        return [str(problem) for problem in data["problems"]]
    return [describe_error_body(data) or "rejected"]


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

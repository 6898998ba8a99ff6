"""The `http` step and its policy: allowlist with ports, checked addresses, redirects, stripped headers, caps."""

# The policy, in order, for the first URL and every redirect target:
# 1. the URL's host and port must match an allowlist entry: `host` (the scheme's default port only),
#    `host:port`, or `host:*` (any port); IPv6 as `[::1]:8000`;
# 2. the host is resolved once, and every address must be public unless the allowlist names it:
#    an entry that is the address itself, or `localhost` for loopback addresses;
# 3. the request goes to the address that was checked (Host header and TLS SNI keep the name),
#    so a second DNS answer cannot send it elsewhere (no DNS-rebinding window);
# 4. a redirect to another origin drops every credential-like header (the redaction key list).
# A stop (cancel or timeout) shuts the socket down, which wakes a blocked read at once.

from __future__ import annotations

import codecs
import contextlib
import functools
import ipaddress
import json
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from tracing.redaction import is_sensitive, redact_url

from .definition import EngineConfig, StepSpec
from .errors import FlowError
from .steps import StepContext, check_string, dynamic

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_TEXT_CHARS = 64 * 1024
READ_CHUNK_BYTES = 64 * 1024
# A connect attempt cannot be woken by a stop, so it gets at most this long.
CONNECT_TIMEOUT = 5.0
ERROR_EXCERPT_CHARS = 120
ANY_PORT = "*"
LOCALHOST = "localhost"
_TAGS = re.compile(r"<[^>]*>")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(FlowError):
    """The policy refuses a URL; the message says why."""


@dataclass(frozen=True)
class Entry:
    """One allowlist entry: a host name or address, and a port (None: the scheme's default; "*": any)."""

    host: str
    port: int | str | None


@dataclass(frozen=True)
class Target:
    """A URL that passed the policy: where to connect and what to call the host."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]  # checked addresses, in resolver order
    path: str  # path and query

    @property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port: what a redirect must keep for credentials to follow it."""
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        """The Host header: the name as written, the port only when it is not the default."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"


@functools.lru_cache(maxsize=32)
def parse_allowlist(entries: frozenset[str]) -> tuple[Entry, ...]:
    """Parse allowlist entries; ValueError names a malformed one."""
    return tuple(_parse_entry(entry) for entry in sorted(entries) if entry.strip())


def _parse_entry(text: str) -> Entry:
    """`host`, `host:port`, `host:*`, `[v6]`, `[v6]:port` or a bare IPv6 address."""
    entry = text.strip().lower()
    port: str | None = None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f'allowed host "{text}": expected [address]:port')
        port = rest[1:] or None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host = entry
    host = host.rstrip(".")
    if not host:
        raise ValueError(f'allowed host "{text}": no host')
    if port is None or port == ANY_PORT:
        return Entry(host, port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'allowed host "{text}": port must be a number from 1 to 65535 or "*"')
    return Entry(host, int(port))


def check_url(url: str, allowed_hosts: Iterable[str]) -> Target:
    """Apply the allowlist and the address rules to a URL; Refused says why it may not be called."""
    try:
        parsed = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError as exc:
        raise Refused(f'invalid url "{redact_url(url)}"') from exc
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise Refused(f'url must be absolute http(s): "{redact_url(url)}"')
    try:
        entries = parse_allowlist(frozenset(allowed_hosts))
    except ValueError as exc:
        raise Refused(str(exc)) from exc
    host = parsed.host.strip("[]").lower().rstrip(".")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    if not any(_matches(entry, host, port, parsed.scheme) for entry in entries):
        where = host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        raise Refused(f'host "{where}" is not in the allowed hosts')
    addresses = _resolve(host, port)
    named = {address for entry in entries if (address := _address(entry.host)) is not None}
    for address in addresses:
        if not _public(address) and address not in named and not (host == LOCALHOST and address.is_loopback):
            raise Refused(f'host "{host}" resolves to {address}, a non-public address the allowed hosts do not name')
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query is not None else "")
    return Target(parsed.scheme, host, port, tuple(str(address) for address in addresses), path)


def _matches(entry: Entry, host: str, port: int, scheme: str) -> bool:
    """True when an entry allows this host and port."""
    if entry.host != host and not (_address(entry.host) is not None and _address(entry.host) == _address(host)):
        return False
    if entry.port == ANY_PORT:
        return True
    return port == (DEFAULT_PORTS[scheme] if entry.port is None else entry.port)


def _address(host: str) -> Address | None:
    """The host as an IP address (IPv4-mapped IPv6 unwrapped), or None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _public(address: Address) -> bool:
    """True for globally routable unicast addresses."""
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int) -> list[Address]:
    """Every address the host resolves to, once each, in resolver order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f'cannot resolve host "{host}": {exc}') from exc
    addresses: list[Address] = []
    for info in infos:
        address = _address(str(info[4][0]).partition("%")[0])
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f'host "{host}" has no address')
    return addresses


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
        problems = check_string(fields, "url") + check_string(fields, "body")
        method = fields.get("method", "GET")
        if not dynamic(method, resolved) and (not isinstance(method, str) or method.upper() not in HTTP_METHODS):
            problems.append(f'"method" must be one of {", ".join(sorted(HTTP_METHODS))}')
        headers = fields.get("headers", {})
        if not dynamic(headers, resolved) and (
            not isinstance(headers, Mapping) or not all(isinstance(value, str) for value in headers.values())
        ):
            problems.append('"headers" must be an object of strings')
        if "json" in fields and "body" in fields:
            problems.append('"json" and "body" are mutually exclusive')
        return problems

    def inline(self, step: StepSpec, config: EngineConfig) -> bool:
        """Network calls block: never inline."""
        return False

    def execute(self, fields: Mapping[str, Any], context: StepContext) -> Any:
        """Send the request; the output is {"status", "json"} or {"status", "text"}; 4xx/5xx fail the step."""
        method = fields.get("method", "GET").upper()
        url = fields["url"]
        headers = {key: value for key, value in fields.get("headers", {}).items() if key.lower() != "host"}
        body: bytes | None = None
        if "json" in fields:
            body = json.dumps(fields["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        elif "body" in fields:
            body = fields["body"].encode()
        target = self._target(url, context)
        for _ in range(MAX_REDIRECTS + 1):
            response = _send(method, url, target, headers, body, context)
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return _output(url, response, context)
            response.close()  # its body is not needed, and may be large
            response.flowexec_pool.close()  # type: ignore[attr-defined]
            url = urljoin(url, location)
            next_target = self._target(url, context)
            if next_target.origin != target.origin:
                # Credentials were meant for the origin they were written for, whatever the header's name.
                keys = context.config.redact_keys
                headers = {key: value for key, value in headers.items() if not is_sensitive(key, keys)}
            target = next_target
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                body = None
                headers = {key: value for key, value in headers.items() if key.lower() != "content-type"}
        raise context.fail(f"too many redirects (more than {MAX_REDIRECTS})")

    def _target(self, url: str, context: StepContext) -> Target:
        """Check a URL against the policy; a refusal fails the step."""
        try:
            return check_url(url, context.config.http_allowed_hosts)
        except Refused as exc:
            raise context.fail(str(exc)) from exc


class _Connection(HTTPConnection):
    """Keeps its socket after http.client lets go of it (it does once a response will close)."""

    def connect(self) -> None:
        """Connect, and remember the socket so a stop can shut it down."""
        super().connect()
        self.kept_sock = self.sock


class _TLSConnection(HTTPSConnection):
    """The HTTPS variant of `_Connection`."""

    def connect(self) -> None:
        """Connect, and remember the socket so a stop can shut it down."""
        super().connect()
        self.kept_sock = self.sock


class _StoppablePool(HTTPConnectionPool):
    """A one-request pool that can shut its connections' sockets down from another thread."""

    ConnectionCls = _Connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made: list[Any] = []

    def _new_conn(self) -> Any:
        """Create a connection and remember it, so `shut` can reach its socket."""
        connection = super()._new_conn()
        self.made.append(connection)
        return connection

    def shut(self) -> None:
        """Shut every socket down: a read blocked on one returns at once."""
        for connection in list(self.made):
            sock = getattr(connection, "kept_sock", None)
            if sock is not None:
                # Already closed: then nothing is blocked on it.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _StoppableHTTPSPool(_StoppablePool, HTTPSConnectionPool):
    """The HTTPS variant; certificates are verified against the host name, not the address."""

    ConnectionCls = _TLSConnection


def _send(
    method: str, url: str, target: Target, headers: Mapping[str, str], body: bytes | None, context: StepContext
) -> urllib3.BaseHTTPResponse:
    """Make one request to the checked addresses without following redirects; the pool rides on the response."""
    timeout = urllib3.Timeout(
        connect=min(CONNECT_TIMEOUT, context.timeout or CONNECT_TIMEOUT), read=context.timeout
    )
    last_error: Exception | None = None
    for address in target.addresses:
        pool = _pool(target, address, timeout)
        try:
            with context.stop.calling(pool.shut):
                response = pool.urlopen(
                    method,
                    target.path,
                    headers={**headers, "Host": target.host_header},
                    body=body,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    preload_content=False,
                    release_conn=False,
                )
        except urllib3.exceptions.NewConnectionError as exc:
            pool.close()
            last_error = exc  # try the host's next address, as a browser would
            continue
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            if context.stop.is_set():
                raise context.stopped() from exc
            raise context.fail(f"{method} {redact_url(url)} failed: {_one_line(str(exc))}") from exc
        response.flowexec_pool = pool  # type: ignore[attr-defined]
        return response
    if context.stop.is_set():
        raise context.stopped()
    raise context.fail(f"{method} {redact_url(url)} failed: {_one_line(str(last_error))}")


def _pool(target: Target, address: str, timeout: urllib3.Timeout) -> _StoppablePool:
    """A fresh pool for one request to one checked address."""
    if target.scheme == "https":
        return _StoppableHTTPSPool(
            address,
            target.port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return _StoppablePool(address, target.port, timeout=timeout, maxsize=1, retries=False)


def _output(url: str, response: urllib3.BaseHTTPResponse, context: StepContext) -> dict[str, Any]:
    """Read a capped body in chunks, stopping early on cancel or timeout; shape the output or fail."""
    pool: _StoppablePool = response.flowexec_pool  # type: ignore[attr-defined]
    limit = context.config.max_output_bytes
    chunks: list[bytes] = []
    size = 0
    try:
        with context.stop.calling(pool.shut):
            while size <= limit and not context.stop.is_set():
                chunk = response.read(READ_CHUNK_BYTES)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except urllib3.exceptions.HTTPError as exc:
        if not context.stop.is_set():
            raise context.fail(f"reading {redact_url(url)} failed: {_one_line(str(exc))}") from exc
    finally:
        response.close()
        pool.close()
    if context.stop.is_set():
        raise context.stopped()  # a shut-down socket reads as a short body: never take it as the answer
    data = b"".join(chunks)
    complete = len(data) <= limit
    content_type = response.headers.get("Content-Type", "")
    text = data[:limit].decode(_charset(content_type), errors="replace")
    if response.status >= 400:
        raise context.fail(_error_line(response, url, text, content_type))
    if "json" in content_type.lower() and complete:
        try:
            return {"status": response.status, "json": json.loads(text)}
        except ValueError:
            pass  # a server mislabelling text as JSON still gets its text recorded
    if len(text) > MAX_TEXT_CHARS or not complete:
        return {"status": response.status, "text": text[:MAX_TEXT_CHARS], "truncated": True}
    return {"status": response.status, "text": text}


def _error_line(response: urllib3.BaseHTTPResponse, url: str, text: str, content_type: str) -> str:
    """One line for an error status: status, reason, where, and a short excerpt of the body."""
    if "html" in content_type.lower():
        text = _TAGS.sub(" ", text)
    excerpt = _one_line(text)
    if len(excerpt) > ERROR_EXCERPT_CHARS:
        excerpt = excerpt[: ERROR_EXCERPT_CHARS - 1].rstrip() + "…"
    line = f"HTTP {response.status} {response.reason or ''}".rstrip() + f" from {redact_url(url)}"
    return f"{line}: {excerpt}" if excerpt else line


def _one_line(text: str) -> str:
    """Collapse whitespace so a message stays on one line."""
    return " ".join(text.split())


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

"""Connection settings of one CLI run: options, then environment, then the config file, then defaults."""

from __future__ import annotations

import argparse
import re
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flowexec import __version__
from flowexec.cli.carriers import environment_request_id
from flowexec.cli.errors import EXIT_USAGE, CliError
from tracing import attributes as attrs

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
SERVICE_NAME = "flowexec-cli"
CLIENT = "cli"
CONFIG_ENV = "FLOWEXEC_CONFIG"
CONFIG_KEYS = frozenset({"url", "token"})


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


def default_config_path(environ: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME/flowexec/config, else ~/.config/flowexec/config."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(base) / "flowexec" / "config"


def read_config(path: Path, *, required: bool) -> dict[str, str]:
    """The TOML config file as {key: value}; a token in a file others can read is refused, like ssh keys."""
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        if required:
            raise CliError(f"config file {path} does not exist", EXIT_USAGE) from None
        return {}
    except OSError as exc:
        raise CliError(f"cannot read config file {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"invalid config file {path}: {exc}", EXIT_USAGE) from exc
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise CliError(f"invalid config file {path}: unknown key {unknown[0]!r} (known: url, token)", EXIT_USAGE)
    if any(not isinstance(value, str) for value in data.values()):
        raise CliError(f"invalid config file {path}: url and token must be strings", EXIT_USAGE)
    if "token" in data and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CliError(
            f"config file {path} holds a token but others may read it (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}",
            EXIT_USAGE,
        )
    return data


def check_request_id(request_id: str) -> str:
    """The request id if it matches the service's rule (tracing.attributes), else a usage error."""
    if not re.fullmatch(attrs.REQUEST_ID_PATTERN, request_id):
        raise CliError(
            f"invalid --request-id {request_id!r}: expected 1-128 of A-Z a-z 0-9 . _ : @ / + = -", EXIT_USAGE
        )
    return request_id


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str], *, service_name: str = SERVICE_NAME, client: str = CLIENT
) -> Settings:
    """Resolve options against the environment and the config file, and validate them."""
    explicit = getattr(args, "config", None) or environ.get(CONFIG_ENV)
    config = read_config(Path(explicit) if explicit else default_config_path(environ), required=bool(explicit))
    url = (getattr(args, "url", None) or environ.get("FLOWEXEC_URL") or config.get("url") or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"invalid --url {url!r}: expected http://HOST[:PORT] or https://...", EXIT_USAGE)
    timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    if not timeout > 0:
        raise CliError(f"invalid --timeout {timeout:g}: expected a positive number of seconds", EXIT_USAGE)
    return Settings(
        url=url,
        token=getattr(args, "token", None) or environ.get("FLOWEXEC_TOKEN") or config.get("token") or None,
        # --request-id, else the caller's (BAGGAGE request_id), else a new one: one id for the whole chain.
        request_id=check_request_id(
            getattr(args, "request_id", None) or environment_request_id(environ) or str(uuid.uuid4())
        ),
        timeout=timeout,
        json=getattr(args, "json", False),
        verbose=getattr(args, "verbose", False),
        service_name=service_name,
        client=client,
    )

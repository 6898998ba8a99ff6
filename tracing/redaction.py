"""The one home of redaction: which keys are sensitive, and masking secret values wherever they appear."""

# Two rules live here. By key: a value stored under a sensitive key (a header, an argument, an
# input name) is never shown. By value: once a run knows its secret values, every text it shows
# (outputs, errors, span events, log lines, stack traces) has them replaced, the way CI systems
# mask secrets in job logs. Imports nothing of Django: the engine and the CLI use it too.

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

from opentelemetry.trace import Span

REDACTED = "[REDACTED]"
REDACT_KEYS_ENV = "FLOWEXEC_REDACT_KEYS"
URL_REDACTED = "REDACTED"
# Query parameters whose values URLs never show, beside the redaction keys: the OTel HTTP semantic
# conventions' defaults, plus `signature` (issue 9).
URL_SENSITIVE_PARAMS = frozenset({"AWSAccessKeyId", "Signature", "signature", "sig", "X-Goog-Signature"})
DEFAULT_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "auth",
        "authorization",
        "api_key",
        "apikey",
        "credential",
        "credentials",
        "cookie",
        "private_key",
    }
)
# Words this short would match inside unrelated words ("auth" in "author"): they must be a whole
# word of the key; longer ones match anywhere in it ("db_password", "accessToken").
_WHOLE_WORD_MAX = 4
# Shorter secrets are not masked by value: masking "7" would rewrite every 7 in every text shown,
# and a one- or two-character secret protects nothing anyway.
MIN_MASKED_LENGTH = 3
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_active: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("flowexec_secrets", default=frozenset())


def redaction_keys(extra: Iterable[str] = ()) -> frozenset[str]:
    """The sensitive key words: the defaults, `extra` (a setting) and FLOWEXEC_REDACT_KEYS (a comma list)."""
    return _keys(frozenset(extra), os.environ.get(REDACT_KEYS_ENV, ""))


@functools.lru_cache(maxsize=32)
def _keys(extra: frozenset[str], from_env: str) -> frozenset[str]:
    """Cached worker of `redaction_keys`."""
    words = (*extra, *from_env.split(","))
    return DEFAULT_KEYS | {word.strip().lower() for word in words if word.strip()}


def is_sensitive(key: str, extra: Iterable[str] = ()) -> bool:
    """True when a key (header, field, input or query parameter name) names a secret."""
    return _sensitive(str(key), redaction_keys(extra))


@functools.lru_cache(maxsize=1024)
def _sensitive(key: str, keys: frozenset[str]) -> bool:
    """Cached worker of `is_sensitive`."""
    words = [word.lower() for word in _WORD.findall(key)]
    compact = "".join(words)
    for word in keys:
        parts = [part.lower() for part in _WORD.findall(word)]
        if not parts:
            continue
        if len("".join(parts)) > _WHOLE_WORD_MAX:
            if "".join(parts) in compact:
                return True
        elif any(words[i : i + len(parts)] == parts for i in range(len(words))):
            return True
    return False


def header_patterns(extra: Iterable[str] = ()) -> list[str]:
    """Regexes for OTel's header-capture sanitizer (case-insensitive search): one per sensitive key word."""
    patterns = {"[-_]?".join(re.escape(part.lower()) for part in _WORD.findall(word)) for word in redaction_keys(extra)}
    return sorted(pattern for pattern in patterns if pattern)


def redact_url(url: str, extra: Iterable[str] = ()) -> str:
    """The URL without userinfo and with sensitive query values replaced (OTel HTTP semantic conventions)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    keys = redaction_keys(extra)
    pairs = [pair.partition("=") for pair in parts.query.split("&")] if parts.query else []
    query = "&".join(
        f"{name}={URL_REDACTED}" if sep and _sensitive_param(name, keys) else f"{name}{sep}{value}"
        for name, sep, value in pairs
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _sensitive_param(name: str, keys: frozenset[str]) -> bool:
    """True for a query parameter whose value must not be shown."""
    return name in URL_SENSITIVE_PARAMS or _sensitive(unquote_plus(name), keys)


def redact(value: Any, keys: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value with the values under sensitive keys replaced, at any depth."""
    sensitive = redaction_keys(keys)
    return _redact(value, sensitive)


def _redact(value: Any, keys: frozenset[str]) -> Any:
    """Recursive worker of `redact`."""
    if isinstance(value, Mapping):
        return {key: REDACTED if _sensitive(str(key), keys) else _redact(item, keys) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, keys) for item in value]
    return value


def secret_texts(values: Iterable[Any]) -> frozenset[str]:
    """The texts to mask for some secret values: each string (or number) inside them, as written."""
    texts: set[str] = set()
    for value in values:
        for leaf in _leaves(value):
            text = leaf if isinstance(leaf, str) else json.dumps(leaf)
            if len(text) >= MIN_MASKED_LENGTH:
                texts.add(text)
    return frozenset(texts)


def _leaves(value: Any) -> Iterator[Any]:
    """Strings and numbers nested in a JSON-like value; booleans and null say nothing secret."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        yield value


@functools.lru_cache(maxsize=64)
def _pattern(values: frozenset[Any]) -> re.Pattern[str] | None:
    """One regex matching every secret as written, URL-encoded and JSON-escaped; longest first."""
    forms: set[str] = set()
    for text in secret_texts(values):
        forms.update({text, quote(text, safe=""), quote_plus(text), json.dumps(text)[1:-1]})
    if not forms:
        return None
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


def _compiled(values: Iterable[Any]) -> re.Pattern[str] | None:
    """The cached pattern for some secret values (any JSON-like values, hashable or not)."""
    return _pattern(values if isinstance(values, frozenset) else secret_texts(values))


def mask(text: str, values: Iterable[Any]) -> str:
    """The text with every secret value (also URL-encoded or JSON-escaped) replaced by [REDACTED]."""
    pattern = _compiled(values)
    return text if pattern is None else pattern.sub(REDACTED, text)


def mask_value(value: Any, values: Iterable[Any]) -> Any:
    """A copy of a JSON-like value with secret values masked in every string (keys included) and number."""
    pattern = _compiled(values)
    return value if pattern is None else _mask_value(value, pattern)


def _mask_value(value: Any, pattern: re.Pattern[str]) -> Any:
    """Recursive worker of `mask_value`; a number that shows a secret becomes the masked text."""
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {_mask_value(str(key), pattern): _mask_value(item, pattern) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(item, pattern) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = json.dumps(value)
        masked = pattern.sub(REDACTED, text)
        return value if masked == text else masked
    return value


@contextmanager
def masking(values: Iterable[Any]) -> Iterator[frozenset[str]]:
    """Make secret values active in this context (threads started from a copy of it inherit them)."""
    texts = _active.get() | secret_texts(values)
    token = _active.set(texts)
    try:
        yield texts
    finally:
        _active.reset(token)


def active_secrets() -> frozenset[str]:
    """The secret texts active in the current context."""
    return _active.get()


def active_mask(text: str) -> str:
    """Mask the text with the secret values active in the current context."""
    active = _active.get()
    return mask(text, active) if active else text


def exception_text(exc: BaseException) -> str:
    """The exception's formatted traceback with the active secrets masked."""
    return active_mask("".join(traceback.format_exception(exc)))


def record_exception(span: Span, exc: BaseException) -> None:
    """Record an exception on a span the way the SDK does, but with message and stack trace masked."""
    span.add_event(
        "exception",
        {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": active_mask(str(exc)),
            "exception.stacktrace": exception_text(exc),
            "exception.escaped": "False",
        },
    )


class SecretsLogFilter(logging.Filter):
    """Mask the active secret values in a record's message, arguments and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when secrets are active; never drop it."""
        if not _active.get():
            return True
        record.msg = active_mask(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = exception_text(record.exc_info[1])
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = active_mask(record.exc_text)
        if record.stack_info:
            record.stack_info = active_mask(record.stack_info)
        return True

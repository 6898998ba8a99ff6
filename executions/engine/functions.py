"""The allowlist of functions `python` steps may call: safe built-ins plus dotted paths from settings."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
PURE_ATTRIBUTE = "flowexec_pure"
# Pure functions run inline without a timeout: none may build a string or list longer than this.
MAX_RESULT_LENGTH = 1024 * 1024


def _bounded(length: int) -> None:
    """Refuse to build a result longer than MAX_RESULT_LENGTH (before building it)."""
    if length > MAX_RESULT_LENGTH:
        raise ValueError(f"the result would have {length} items (max {MAX_RESULT_LENGTH})")


def pure(function: F) -> F:
    """Mark a function as pure and instant, so `python` steps calling it run inline (no thread, no timeout)."""
    setattr(function, PURE_ATTRIBUTE, True)
    return function


def is_pure(function: Callable[..., Any]) -> bool:
    """True for functions marked with `pure`."""
    return getattr(function, PURE_ATTRIBUTE, False) is True


@pure
def upper(text: str) -> str:
    """Return the text in upper case."""
    return text.upper()


@pure
def lower(text: str) -> str:
    """Return the text in lower case."""
    return text.lower()


@pure
def concat(items: list[Any], separator: str = "") -> str:
    """Join the items as strings with a separator."""
    texts = [str(item) for item in items]
    _bounded(sum(map(len, texts)) + len(str(separator)) * max(len(texts) - 1, 0))
    return str(separator).join(texts)


@pure
def split(text: str, separator: str | None = None) -> list[str]:
    """Split the text on a separator (whitespace by default)."""
    return text.split(separator)


@pure
def replace(text: str, old: str, new: str) -> str:
    """Replace every occurrence of `old` in the text by `new`."""
    if old:
        _bounded(len(text) + text.count(old) * (len(new) - len(old)))
    else:
        _bounded(len(text) + (len(text) + 1) * len(new))
    return text.replace(old, new)


@pure
def add(a: float, b: float) -> float:
    """Return a + b."""
    return a + b


@pure
def multiply(a: float, b: float) -> float:
    """Return a * b; repeating a string or list is bounded, so a tiny step cannot allocate gigabytes."""
    for sequence, times in ((a, b), (b, a)):
        if isinstance(sequence, str | list) and isinstance(times, int):
            _bounded(len(sequence) * times)
    return a * b


@pure
def total(values: list[float]) -> float:
    """Return the sum of the values."""
    return sum(values)


@pure
def length(value: str | list[Any] | Mapping[str, Any]) -> int:
    """Return the length of a string, array or object."""
    return len(value)


@pure
def echo(value: Any = None) -> Any:
    """Return the value unchanged."""
    return value


@pure
def json_dumps(value: Any) -> str:
    """Serialise a value to a JSON string."""
    return json.dumps(value, sort_keys=True)


@pure
def json_loads(text: str) -> Any:
    """Parse a JSON string."""
    return json.loads(text)


@pure
def get(value: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """Return value[key], or the default when the key is missing."""
    return value.get(key, default)


@pure
def keys(value: Mapping[str, Any]) -> list[str]:
    """Return the keys of an object."""
    return list(value)


def builtin_functions() -> dict[str, Callable[..., Any]]:
    """Return the built-in registry, name -> callable; every function takes keyword arguments."""
    return {
        "upper": upper,
        "lower": lower,
        "concat": concat,
        "split": split,
        "replace": replace,
        "add": add,
        "multiply": multiply,
        "sum": total,
        "length": length,
        "echo": echo,
        "json_dumps": json_dumps,
        "json_loads": json_loads,
        "get": get,
        "keys": keys,
    }


def load_functions(dotted_paths: Iterable[str]) -> dict[str, Callable[..., Any]]:
    """Import each "pkg.mod.func" and register it under its full dotted path; ValueError names a bad path."""
    loaded: dict[str, Callable[..., Any]] = {}
    for path in dotted_paths:
        module_name, _, attribute = path.rpartition(".")
        if not module_name or not attribute:
            raise ValueError(f'python function "{path}": expected a dotted path like "pkg.module.function"')
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f'python function "{path}": cannot import "{module_name}": {exc}') from exc
        function = getattr(module, attribute, None)
        if not callable(function):
            raise ValueError(f'python function "{path}": "{attribute}" is not a callable in "{module_name}"')
        loaded[path] = function
    return loaded

"""`${inputs.NAME}` / `${steps.STEP.output.path}` references: find, check and resolve them by plain lookup."""

# Resolution only walks dicts and lists by key/index: nothing in a definition is ever evaluated.

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_NAME = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
_PATH = r"((?:\.[A-Za-z0-9_-]+)*)"
_INPUT_EXPRESSION = re.compile(rf"inputs\.({_NAME}){_PATH}")
_STEP_EXPRESSION = re.compile(rf"steps\.({_NAME})\.output{_PATH}")
_SINGLE = re.compile(r"\$\{([^{}]*)\}")


@dataclass(frozen=True)
class Reference:
    """One parsed `${...}` expression."""

    kind: str  # "inputs" or "steps"
    name: str
    path: tuple[str, ...]
    text: str  # the expression as written, with `${` and `}`


@dataclass(frozen=True)
class Scope:
    """The values references resolve against."""

    inputs: Mapping[str, Any]
    steps: Mapping[str, Any]  # step name -> output


def parse_expression(expression: str) -> Reference | None:
    """Parse the inside of `${...}`; None when it is not a valid reference."""
    text = "${" + expression + "}"
    if match := _INPUT_EXPRESSION.fullmatch(expression):
        return Reference("inputs", match[1], _split_path(match[2]), text)
    if match := _STEP_EXPRESSION.fullmatch(expression):
        return Reference("steps", match[1], _split_path(match[2]), text)
    return None


def _split_path(path: str) -> tuple[str, ...]:
    """Turn ".a.0.b" into ("a", "0", "b")."""
    return tuple(path[1:].split(".")) if path else ()


def scan(text: str) -> tuple[list[Reference], list[str]]:
    """Return the references in a string and the malformed `${...}` expressions found in it."""
    references: list[Reference] = []
    malformed: list[str] = []
    position = 0
    while (start := text.find("${", position)) != -1:
        end = text.find("}", start)
        if end == -1:
            malformed.append(text[start:])
            break
        expression = text[start + 2 : end]
        reference = parse_expression(expression) if "{" not in expression else None
        if reference is None:
            malformed.append(text[start : end + 1])
        else:
            references.append(reference)
        position = end + 1
    return references, malformed


def walk_strings(value: Any) -> Iterator[str]:
    """Yield every string nested anywhere in a JSON-like value (dict keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from walk_strings(item)


def collect(value: Any) -> tuple[list[Reference], list[str]]:
    """Return all references and malformed expressions nested in a JSON-like value."""
    references: list[Reference] = []
    malformed: list[str] = []
    for text in walk_strings(value):
        found, bad = scan(text)
        references.extend(found)
        malformed.extend(bad)
    return references, malformed


def single_reference(value: Any) -> Reference | None:
    """The reference when `value` is a string that is exactly one reference, else None."""
    if isinstance(value, str) and (match := _SINGLE.fullmatch(value)):
        return parse_expression(match[1])
    return None


def stringify(value: Any) -> str:
    """Render a resolved value inside a longer string: strings as-is, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def lookup(reference: Reference, scope: Scope) -> Any:
    """Return the value a reference points at; ValueError when it does not exist."""
    source = scope.inputs if reference.kind == "inputs" else scope.steps
    if reference.name not in source:
        raise ValueError(f'cannot resolve {reference.text}: no {reference.kind[:-1]} "{reference.name}"')
    value = source[reference.name]
    for key in reference.path:
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise ValueError(f'cannot resolve {reference.text}: no "{key}" in {_kind_of(value)}')
    return value


def _kind_of(value: Any) -> str:
    """Describe a value's JSON type for error messages."""
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else type(value).__name__


def resolve(value: Any, scope: Scope) -> Any:
    """Replace every reference nested in a JSON-like value; an exact single reference keeps its type."""
    if isinstance(value, str):
        if (reference := single_reference(value)) is not None:
            return lookup(reference, scope)
        return _SINGLE.sub(lambda match: _substitute(match, scope), value)
    if isinstance(value, Mapping):
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, scope) for item in value]
    return value


def _substitute(match: re.Match[str], scope: Scope) -> str:
    """Render one embedded reference as text."""
    reference = parse_expression(match[1])
    if reference is None:  # validation rejects these; leave the text untouched rather than guess
        return match[0]
    return stringify(lookup(reference, scope))

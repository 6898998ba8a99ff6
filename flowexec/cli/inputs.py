"""The one `--input` syntax of every client (flowexec, manage.py runflow, runflow --remote).

`KEY=VALUE` sends VALUE as a string, always; `KEY:=JSON` sends JSON (numbers, booleans, null, lists,
objects). One rule, so the same command line means the same inputs whichever client runs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class InputSyntaxError(ValueError):
    """An --input pair that is neither KEY=VALUE nor KEY:=JSON."""


def parse_pair(pair: str) -> tuple[str, Any]:
    """One KEY=VALUE (string) or KEY:=JSON pair as (key, value)."""
    key, sep, value = pair.partition("=")
    if not sep or not key.rstrip(":"):
        raise InputSyntaxError(f"invalid --input {pair!r}: expected KEY=VALUE or KEY:=JSON")
    if not key.endswith(":"):
        return key, value
    try:
        return key[:-1], json.loads(value)
    except json.JSONDecodeError as exc:
        raise InputSyntaxError(f"invalid --input {pair!r}: VALUE after ':=' is not JSON ({exc.msg})") from exc


def parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """KEY=VALUE / KEY:=JSON pairs as a dict; a later pair wins over an earlier one."""
    return dict(parse_pair(pair) for pair in pairs)

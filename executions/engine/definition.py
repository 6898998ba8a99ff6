"""Engine data: configuration, parsed flow definitions, step outcomes and run results; plus `load`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import yaml

from .errors import FlowValidationError
from .functions import builtin_functions

DEFAULT_MAX_DEFINITION_BYTES = 256 * 1024


def _builtin_registry() -> Mapping[str, Callable[..., Any]]:
    """Return a read-only copy of the built-in functions."""
    return MappingProxyType(builtin_functions())


@dataclass(frozen=True)
class EngineConfig:
    """Limits and registries for parsing and running flows; the service builds one from settings."""

    python_functions: Mapping[str, Callable[..., Any]] = field(default_factory=_builtin_registry)
    http_allowed_hosts: frozenset[str] = frozenset()
    max_workers: int = 4
    max_definition_bytes: int = DEFAULT_MAX_DEFINITION_BYTES
    max_steps: int = 200
    max_depth: int = 5
    default_step_timeout: float | None = 60.0
    record_content: bool = True
    redact_keys: frozenset[str] = frozenset()
    content_max_bytes: int = 4096


@dataclass(frozen=True)
class InputSpec:
    """One declared flow input."""

    name: str
    type: str  # string, integer, number, boolean, object, array
    default: Any
    required: bool
    description: str


@dataclass(frozen=True)
class StepSpec:
    """One validated step; `config` holds the type-specific fields, still containing `${...}` references."""

    name: str
    type: str
    config: Mapping[str, Any]
    after: tuple[str, ...]
    depends_on: frozenset[str]
    timeout: float | None
    retries: int


@dataclass(frozen=True)
class FlowDefinition:
    """A validated flow; `document` is the normalised JSON-serialisable source."""

    name: str
    version: int
    description: str
    inputs: Mapping[str, InputSpec]
    steps: tuple[StepSpec, ...]
    outputs: Mapping[str, Any]
    document: Mapping[str, Any]


@dataclass(frozen=True)
class StepOutcome:
    """How one step ended, over all its attempts."""

    name: str
    type: str
    status: str  # succeeded, failed, cancelled
    output: Any
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime
    span_id: str | None  # 16 hex digits of the last attempt's span; None when not sampled


@dataclass(frozen=True)
class RunResult:
    """How a run ended; `steps` holds only the steps that were started, in finishing order."""

    status: str  # succeeded, failed, cancelled
    outputs: dict[str, Any]
    error: str | None
    steps: tuple[StepOutcome, ...]


def load(source: str | bytes | Mapping[str, Any], *, max_bytes: int = DEFAULT_MAX_DEFINITION_BYTES) -> dict[str, Any]:
    """Turn JSON or YAML text (or a parsed mapping) into a JSON-serialisable dict, or FlowValidationError."""
    if isinstance(source, Mapping):
        try:
            text = json.dumps(source)
        except (TypeError, ValueError) as exc:
            raise FlowValidationError([f"definition is not JSON-serialisable: {exc}"]) from exc
        _check_size(len(text.encode()), max_bytes)
        return json.loads(text)
    raw = source.encode() if isinstance(source, str) else source
    _check_size(len(raw), max_bytes)
    try:
        document = json.loads(raw)
    except ValueError:
        try:
            document = yaml.load(raw, Loader=_NoAliasLoader)  # a SafeLoader: plain data only
        except yaml.YAMLError as exc:
            raise FlowValidationError([f"definition is neither valid JSON nor YAML: {_first_line(exc)}"]) from exc
    if not isinstance(document, dict):
        raise FlowValidationError(["definition must be an object"])
    try:
        return json.loads(json.dumps(document))
    except (TypeError, ValueError) as exc:
        raise FlowValidationError([f"definition is not JSON-serialisable: {exc}"]) from exc


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases, which could expand a small text into a huge document."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Refuse aliases; compose everything else as usual."""
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _check_size(size: int, max_bytes: int) -> None:
    """Reject definitions over the size limit."""
    if size > max_bytes:
        raise FlowValidationError([f"definition is too large: {size} bytes (max {max_bytes})"])


def _first_line(exc: Exception) -> str:
    """Collapse a parser error to one line."""
    return " ".join(str(exc).split())

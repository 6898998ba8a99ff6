"""Engine data: configuration, parsed flow definitions, step outcomes and run results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from .functions import builtin_functions
from .loading import DEFAULT_MAX_DEFINITION_BYTES, DEFAULT_MAX_NESTING

# Largest JSON encoding of one step's output or of a run's outputs (http bodies are read up to it).
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024


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
    max_nesting: int = DEFAULT_MAX_NESTING
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_steps: int = 200
    max_depth: int = 5
    default_step_timeout: float | None = 60.0
    record_content: bool = False
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
    secret: bool = False  # declared `"secret": true`, or named like a redaction key


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
    retry_delay: float = 0.0  # seconds before the first retry
    retry_backoff: float = 2.0  # factor applied to the delay for each further retry


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

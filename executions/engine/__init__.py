"""The flow engine: parse and validate definitions, bind inputs, run steps; plain Python, no Django."""

from __future__ import annotations

from .definition import EngineConfig, FlowDefinition, InputSpec, RunResult, StepOutcome, StepSpec
from .errors import (
    ExecutionCancelled,
    FlowError,
    FlowNotFound,
    FlowValidationError,
    StepError,
    StepTimeout,
)
from .functions import builtin_functions, load_functions
from .hooks import NullHooks, RunHooks
from .http import parse_allowlist
from .loading import check_depth, load, load_document
from .scheduler import instant, run
from .validation import bind_inputs, parse, secret_inputs

__all__ = [
    "EngineConfig",
    "ExecutionCancelled",
    "FlowDefinition",
    "FlowError",
    "FlowNotFound",
    "FlowValidationError",
    "InputSpec",
    "NullHooks",
    "RunHooks",
    "RunResult",
    "StepError",
    "StepOutcome",
    "StepSpec",
    "StepTimeout",
    "bind_inputs",
    "builtin_functions",
    "check_depth",
    "instant",
    "load",
    "load_document",
    "load_functions",
    "parse",
    "parse_allowlist",
    "run",
    "secret_inputs",
]

"""The flow engine: parse and validate definitions, bind inputs, run steps; plain Python, no Django."""

from __future__ import annotations

from .definition import EngineConfig, FlowDefinition, InputSpec, RunResult, StepOutcome, StepSpec, load
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
from .scheduler import run
from .validation import bind_inputs, parse

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
    "load",
    "load_functions",
    "parse",
    "run",
]

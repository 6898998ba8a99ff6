"""What the engine asks of its caller while running: progress callbacks, cancellation, sub-flows."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from .definition import StepOutcome, StepSpec
from .errors import FlowError


class RunHooks(Protocol):
    """Caller-supplied behaviour; methods may be called from pool threads."""

    def step_started(self, step: StepSpec, attempt: int, started_at: datetime) -> None:
        """Called before each attempt of a step, except for steps run inline (pure and instant)."""

    def step_finished(self, outcome: StepOutcome) -> None:
        """Called once per started step, after its last attempt."""

    def is_cancelled(self) -> bool:
        """Return True once the run should start nothing more."""

    def run_subflow(
        self, flow: str, inputs: Mapping[str, Any], depth: int, stop: threading.Event
    ) -> Mapping[str, Any]:
        """Run another flow by name and return its outputs; raise FlowError on failure.

        `stop` is set when the calling step times out or the run is cancelled: then cancel the
        child and return or raise promptly.
        """


class NullHooks:
    """Hooks for callers that need none: no callbacks, never cancelled, no sub-flows."""

    def step_started(self, step: StepSpec, attempt: int, started_at: datetime) -> None:
        """Ignore the start of an attempt."""

    def step_finished(self, outcome: StepOutcome) -> None:
        """Ignore the end of a step."""

    def is_cancelled(self) -> bool:
        """Never cancelled."""
        return False

    def run_subflow(
        self, flow: str, inputs: Mapping[str, Any], depth: int, stop: threading.Event
    ) -> Mapping[str, Any]:
        """Refuse: without a caller there is nowhere to look flows up."""
        raise FlowError(f'cannot run sub-flow "{flow}": no flow store available to this run')

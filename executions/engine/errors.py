"""Errors raised by the flow engine, each with a stable `code` for API and CLI mapping."""

from __future__ import annotations


class FlowError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "flow_error"


class FlowValidationError(FlowError):
    """A definition or its inputs are invalid; `problems` lists every problem found."""

    code = "invalid_flow"

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class FlowNotFound(FlowError):
    """No flow with this name exists."""

    code = "flow_not_found"

    def __init__(self, name: str):
        self.name = name
        super().__init__(f'flow "{name}" not found')


class StepError(FlowError):
    """A step failed; the message names the step."""

    code = "step_failed"

    def __init__(self, step: str, message: str):
        self.step = step
        self.message = message
        super().__init__(f'step "{step}": {message}')


class StepTimeout(StepError):
    """A step attempt ran longer than its timeout."""

    code = "step_timeout"


class ExecutionCancelled(FlowError):
    """The execution was cancelled before it finished."""

    code = "cancelled"

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)

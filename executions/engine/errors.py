"""Errors raised by the flow engine; each carries the data its message was made from."""

from __future__ import annotations


class FlowError(Exception):
    """Base of every error the engine raises on purpose."""


class FlowValidationError(FlowError):
    """A definition or its inputs are invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class FlowNotFound(FlowError):
    """No flow with this name exists."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f'flow "{name}" not found')


class StepError(FlowError):
    """A step failed; the message names the step."""

    def __init__(self, step: str, message: str):
        self.step = step
        super().__init__(f'step "{step}": {message}')


class StepTimeout(StepError):
    """A step attempt ran longer than its timeout."""


class ExecutionCancelled(FlowError):
    """The execution was cancelled before it finished."""

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)

"""The step types by name: the simple ones from `steps`, `http` from its own module."""

from __future__ import annotations

from collections.abc import Mapping

from .http import HttpStep
from .steps import FailStep, FlowStep, PythonStep, SleepStep, StepType, TemplateStep

STEP_TYPES: Mapping[str, StepType] = {
    "template": TemplateStep(),
    "python": PythonStep(),
    "http": HttpStep(),
    "sleep": SleepStep(),
    "flow": FlowStep(),
    "fail": FailStep(),
}

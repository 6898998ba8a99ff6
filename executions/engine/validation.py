"""Turn a flow document into a FlowDefinition, reporting every problem at once; bind run inputs."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from tracing.redaction import REDACTED, is_sensitive

from .definition import EngineConfig, FlowDefinition, InputSpec, StepSpec
from .errors import FlowValidationError
from .loading import load
from .references import Reference, collect
from .registry import STEP_TYPES
from .steps import COMMON_FIELDS, FLOW_NAME, is_number

STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
TOP_LEVEL_FIELDS = frozenset({"name", "version", "description", "inputs", "steps", "outputs"})
INPUT_FIELDS = frozenset({"type", "default", "required", "description", "secret"})
INPUT_TYPES = ("string", "integer", "number", "boolean", "object", "array")
CONTAINER_TYPES = frozenset({"object", "array"})
MAX_RETRIES = 10
MAX_RETRY_DELAY = 300.0
MAX_RETRY_BACKOFF = 10.0


def parse(source: str | bytes | Mapping[str, Any], *, config: EngineConfig | None = None) -> FlowDefinition:
    """Load and validate a definition; FlowValidationError lists every problem found."""
    config = config or EngineConfig()
    document = load(source, max_bytes=config.max_definition_bytes, max_depth=config.max_nesting)
    problems: list[str] = []
    for key in document:
        if key not in TOP_LEVEL_FIELDS:
            problems.append(f'unknown field "{key}"')
    name = document.get("name")
    if not isinstance(name, str) or not FLOW_NAME.fullmatch(name):
        problems.append('"name" is required: letters, digits, "_" or "-", at most 100 characters')
    version = document.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append('"version" must be a positive integer')
    description = document.get("description", "")
    if not isinstance(description, str):
        problems.append('"description" must be a string')
    inputs = _parse_inputs(document.get("inputs", {}), config, problems)
    steps = _parse_steps(document.get("steps"), inputs, config, problems)
    outputs = document.get("outputs", {})
    if isinstance(outputs, Mapping):
        for key, value in outputs.items():
            _check_references(f'output "{key}"', value, inputs, {step.name for step in steps}, problems)
    else:
        problems.append('"outputs" must be an object')
    if problems:
        raise FlowValidationError(problems)
    return FlowDefinition(
        name=name,
        version=version,
        description=description,
        inputs=inputs,
        steps=tuple(steps),
        outputs=outputs,
        document={
            **document,
            "version": version,
            "description": description,
            "inputs": document.get("inputs", {}),
            "outputs": outputs,
        },
    )


def _parse_inputs(raw: Any, config: EngineConfig, problems: list[str]) -> dict[str, InputSpec]:
    """Validate the `inputs` section and build its specs."""
    if not isinstance(raw, Mapping):
        problems.append('"inputs" must be an object')
        return {}
    specs: dict[str, InputSpec] = {}
    for name, spec in raw.items():
        label = f'input "{name}"'
        if not STEP_NAME.fullmatch(name):
            problems.append(f"{label}: invalid name")
        if not isinstance(spec, Mapping):
            problems.append(f"{label}: must be an object")
            continue
        problems.extend(f'{label}: unknown field "{key}"' for key in spec if key not in INPUT_FIELDS)
        kind = spec.get("type", "string")
        if kind not in INPUT_TYPES:
            problems.append(f'{label}: unknown type "{kind}" (expected one of {", ".join(INPUT_TYPES)})')
        required = spec.get("required", "default" not in spec)
        if not isinstance(required, bool):
            problems.append(f'{label}: "required" must be a boolean')
        elif required and "default" in spec:
            problems.append(f"{label}: a required input cannot have a default")
        default = spec.get("default")
        if default is not None and kind in INPUT_TYPES and not _matches(kind, default):
            problems.append(f"{label}: default expected {kind}, got {json.dumps(default)}")
        description = spec.get("description", "")
        if not isinstance(description, str):
            problems.append(f'{label}: "description" must be a string')
        # An explicit "secret": false lets a flow keep e.g. a "token_limit" number in clear.
        secret = spec.get("secret", is_sensitive(name, config.redact_keys))
        if not isinstance(secret, bool):
            problems.append(f'{label}: "secret" must be a boolean')
        specs[name] = InputSpec(name, kind, default, required is True, str(description), secret is True)
    return specs


def _parse_steps(
    raw: Any, inputs: Mapping[str, InputSpec], config: EngineConfig, problems: list[str]
) -> list[StepSpec]:
    """Validate the `steps` section, its references and its dependency graph; build the specs."""
    if not isinstance(raw, list) or not raw:
        problems.append('"steps" must be a non-empty list')
        return []
    if len(raw) > config.max_steps:
        problems.append(f"too many steps: {len(raw)} (max {config.max_steps})")
        return []
    names = [step.get("name") if isinstance(step, Mapping) else None for step in raw]
    known = {name for name in names if isinstance(name, str)}
    seen: set[str] = set()
    specs: list[StepSpec] = []
    for index, step in enumerate(raw, start=1):
        if not isinstance(step, Mapping):
            problems.append(f"step #{index}: must be an object")
            continue
        name = step.get("name")
        if not isinstance(name, str) or not STEP_NAME.fullmatch(name):
            problems.append(f'step #{index}: "name" must match {STEP_NAME.pattern}')
            continue
        if name in seen:
            problems.append(f'duplicate step name "{name}"')
            continue
        seen.add(name)
        if (spec := _parse_step(name, step, inputs, known, config, problems)) is not None:
            specs.append(spec)
    _check_cycles(specs, problems)
    return specs


def _parse_step(
    name: str,
    step: Mapping[str, Any],
    inputs: Mapping[str, InputSpec],
    known: set[str],
    config: EngineConfig,
    problems: list[str],
) -> StepSpec | None:
    """Validate one step; None when its type is unusable."""
    label = f'step "{name}"'
    before = len(problems)
    kind = step.get("type")
    step_type = STEP_TYPES.get(kind) if isinstance(kind, str) else None
    if kind is None:
        problems.append(f'{label}: "type" is required')
    elif step_type is None:
        problems.append(f'{label}: unknown type "{kind}"')
    fields = {key: value for key, value in step.items() if key not in COMMON_FIELDS}
    if step_type is not None:
        problems.extend(f'{label}: unknown field "{key}"' for key in fields if key not in step_type.fields)
        problems.extend(
            f'{label}: "{key}" is required'
            for key, required in step_type.fields.items()
            if required and key not in fields
        )
        problems.extend(f"{label}: {problem}" for problem in step_type.check(fields, config, resolved=False))
    after = step.get("after", [])
    if not isinstance(after, list) or not all(isinstance(target, str) for target in after):
        problems.append(f'{label}: "after" must be a list of step names')
        after = []
    for target in after:
        if target == name:
            problems.append(f"{label}: cannot run after itself")
        elif target not in known:
            problems.append(f'{label}: unknown step "{target}" in after')
    timeout = step.get("timeout")
    if timeout is not None and (not is_number(timeout) or timeout <= 0):
        problems.append(f'{label}: "timeout" must be a positive number of seconds')
    retries = step.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        problems.append(f'{label}: "retries" must be an integer from 0 to {MAX_RETRIES}')
    retry_delay = step.get("retry_delay", 0.0)
    if not is_number(retry_delay) or not 0 <= retry_delay <= MAX_RETRY_DELAY:
        problems.append(f'{label}: "retry_delay" must be a number of seconds from 0 to {MAX_RETRY_DELAY:g}')
    retry_backoff = step.get("retry_backoff", 2.0)
    if not is_number(retry_backoff) or not 1 <= retry_backoff <= MAX_RETRY_BACKOFF:
        problems.append(f'{label}: "retry_backoff" must be a number from 1 to {MAX_RETRY_BACKOFF:g}')
    if not isinstance(step.get("description", ""), str):
        problems.append(f'{label}: "description" must be a string')
    references = _check_references(label, fields, inputs, known, problems, own=name)
    if len(problems) > before:
        return None
    depends_on = {reference.name for reference in references if reference.kind == "steps"} | set(after)
    return StepSpec(
        name, kind, fields, tuple(after), frozenset(depends_on), timeout, retries, retry_delay, retry_backoff
    )


def _check_references(
    label: str,
    value: Any,
    inputs: Mapping[str, InputSpec],
    steps: set[str],
    problems: list[str],
    own: str | None = None,
) -> list[Reference]:
    """Report malformed or dangling references in a value; return the references found."""
    references, malformed = collect(value)
    problems.extend(f'{label}: malformed expression "{text}"' for text in malformed)
    for reference in references:
        if reference.kind == "steps":
            if reference.name == own:
                problems.append(f"{label}: cannot use its own output in {reference.text}")
            elif reference.name not in steps:
                problems.append(f'{label}: unknown step "{reference.name}" in {reference.text}')
        elif reference.name not in inputs:
            problems.append(f'{label}: unknown input "{reference.name}" in {reference.text}')
        elif reference.path and inputs[reference.name].type not in CONTAINER_TYPES:
            problems.append(
                f'{label}: input "{reference.name}" is a {inputs[reference.name].type} '
                f"and has no fields, in {reference.text}"
            )
    return references


def _check_cycles(specs: list[StepSpec], problems: list[str]) -> None:
    """Report each dependency cycle once, naming its steps in order."""
    graph = {spec.name: sorted(spec.depends_on) for spec in specs}
    state: dict[str, str] = {}  # name -> "active" while on the DFS stack, "done" after
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(name: str) -> None:
        """Depth-first search recording back edges as cycles."""
        state[name] = "active"
        stack.append(name)
        for target in graph[name]:
            if target not in graph:
                continue  # dangling references are reported elsewhere
            if state.get(target) == "active":
                cycle = [*stack[stack.index(target) :], target]
                if (members := frozenset(cycle)) not in reported:
                    reported.add(members)
                    problems.append("steps form a cycle: " + " -> ".join(f'"{step}"' for step in cycle))
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for spec in specs:
        if spec.name not in state:
            visit(spec.name)


def secret_inputs(definition: FlowDefinition) -> frozenset[str]:
    """Names of the inputs whose values are secret."""
    return frozenset(name for name, spec in definition.inputs.items() if spec.secret)


def bind_inputs(definition: FlowDefinition, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Check run inputs against the definition and apply defaults; FlowValidationError lists every problem."""
    # Text is accepted for integer, number and boolean inputs when it converts exactly ("3", "2.5",
    # "true"): command lines and query strings only carry text.
    problems = [f'input "{name}": unknown input' for name in inputs if name not in definition.inputs]
    bound: dict[str, Any] = {}
    for name, spec in definition.inputs.items():
        if name not in inputs:
            if spec.required:
                problems.append(f'input "{name}": required')
            else:
                bound[name] = copy.deepcopy(spec.default)
            continue
        value = _coerce(spec.type, inputs[name])
        if value is None and (inputs[name] is not None or spec.required):
            # A secret's value must not come back in an error message (API responses, logs).
            got = REDACTED if spec.secret else json.dumps(inputs[name], default=str)
            problems.append(f'input "{name}": expected {spec.type}, got {got}')
        else:
            bound[name] = value
    if problems:
        raise FlowValidationError(problems)
    return bound


def _matches(kind: str, value: Any) -> bool:
    """True when a value has the JSON type an input declares."""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = {"string": str, "boolean": bool, "object": Mapping, "array": list}[kind]
    return isinstance(value, expected)


def _coerce(kind: str, value: Any) -> Any:
    """Return the value as the declared type, converting exact text forms; None when it does not fit."""
    if value is None or _matches(kind, value):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower())
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if kind == "number" and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        return float(text)
    return None

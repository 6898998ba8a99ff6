"""Loading definitions, binding inputs, resolving references, the function registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from executions import engine
from executions.engine.references import Scope, resolve

GREET = {
    "name": "greet",
    "version": 2,
    "description": "Say hello and shout it",
    "inputs": {"name": {"type": "string", "default": "world"}},
    "steps": [
        {"name": "hello", "type": "template", "template": "Hello, ${inputs.name}!"},
        {"name": "shout", "type": "python", "function": "upper", "args": {"text": "${steps.hello.output}"}},
        {"name": "pause", "type": "sleep", "seconds": 0.01, "after": ["hello"]},
    ],
    "outputs": {"greeting": "${steps.shout.output}"},
}

GREET_YAML = """
name: greet
version: 2
description: Say hello and shout it
inputs:
  name: {type: string, default: world}
steps:
  - name: hello
    type: template
    template: "Hello, ${inputs.name}!"
  - name: shout
    type: python
    function: upper
    args: {text: "${steps.hello.output}"}
  - {name: pause, type: sleep, seconds: 0.01, after: [hello]}
outputs:
  greeting: "${steps.shout.output}"
"""


def test_json_yaml_and_mapping_sources_parse_to_the_same_definition():
    from_json = engine.parse(json.dumps(GREET))
    from_bytes = engine.parse(json.dumps(GREET).encode())
    from_yaml = engine.parse(GREET_YAML)
    from_mapping = engine.parse(GREET)
    assert from_json == from_bytes == from_yaml == from_mapping
    assert from_json.name == "greet"
    assert from_json.version == 2
    assert [step.name for step in from_json.steps] == ["hello", "shout", "pause"]


def test_parse_builds_specs_with_dependencies_from_references_and_after():
    definition = engine.parse(GREET)
    steps = {step.name: step for step in definition.steps}
    assert steps["hello"].depends_on == frozenset()
    assert steps["shout"].depends_on == frozenset({"hello"})
    assert steps["shout"].config == {"function": "upper", "args": {"text": "${steps.hello.output}"}}
    assert steps["pause"].after == ("hello",)
    assert steps["pause"].depends_on == frozenset({"hello"})
    assert definition.inputs["name"] == engine.InputSpec("name", "string", "world", False, "")


def test_document_is_normalised_and_json_serialisable():
    definition = engine.parse({"name": "tiny", "steps": [{"name": "a", "type": "fail"}]})
    assert definition.version == 1
    assert definition.description == ""
    assert json.loads(json.dumps(definition.document)) == {
        "name": "tiny",
        "version": 1,
        "description": "",
        "inputs": {},
        "steps": [{"name": "a", "type": "fail"}],
        "outputs": {},
    }


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{not json: [", "definition is neither valid JSON nor YAML"),
        ("[1, 2]", "definition must be an object"),
        ("just text", "definition must be an object"),
        ("when: !!binary aGk=", "definition is not JSON-serialisable"),
    ],
)
def test_load_rejects_unusable_text(source, problem):
    with pytest.raises(engine.FlowValidationError) as caught:
        engine.load(source)
    assert caught.value.problems[0].startswith(problem)


def test_load_rejects_yaml_aliases():
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(engine.FlowValidationError, match="aliases are not allowed"):
        engine.load(bomb)


def test_load_rejects_oversized_text_and_mappings():
    with pytest.raises(engine.FlowValidationError, match=r"definition is too large: 2\d\d bytes \(max 100\)"):
        engine.load(json.dumps({"name": "x" * 200}), max_bytes=100)
    with pytest.raises(engine.FlowValidationError, match="definition is too large"):
        engine.load({"name": "x" * 200}, max_bytes=100)


def _counter_flow() -> engine.FlowDefinition:
    """A flow with one input of each interesting kind."""
    return engine.parse(
        {
            "name": "typed",
            "inputs": {
                "count": {"type": "integer"},
                "ratio": {"type": "number", "default": 0.5},
                "loud": {"type": "boolean", "default": False},
                "tags": {"type": "array", "default": ["a"]},
                "note": {"type": "string", "required": False},
            },
            "steps": [{"name": "a", "type": "template", "template": "${inputs.count}"}],
        }
    )


def test_bind_inputs_applies_defaults_and_keeps_given_values():
    bound = engine.bind_inputs(_counter_flow(), {"count": 3, "loud": True})
    assert bound == {"count": 3, "ratio": 0.5, "loud": True, "tags": ["a"], "note": None}


def test_bind_inputs_converts_exact_text_forms():
    bound = engine.bind_inputs(_counter_flow(), {"count": "42", "ratio": "1.5", "loud": "true"})
    assert (bound["count"], bound["ratio"], bound["loud"]) == (42, 1.5, True)


def test_bind_inputs_reports_every_problem():
    with pytest.raises(engine.FlowValidationError) as caught:
        engine.bind_inputs(_counter_flow(), {"ratio": "x", "loud": 1, "extra": 1, "tags": "a"})
    assert caught.value.problems == [
        'input "extra": unknown input',
        'input "count": required',
        'input "ratio": expected number, got "x"',
        'input "loud": expected boolean, got 1',
        'input "tags": expected array, got "a"',
    ]


def test_bind_inputs_rejects_text_for_integer():
    with pytest.raises(engine.FlowValidationError, match='input "count": expected integer, got "x"'):
        engine.bind_inputs(_counter_flow(), {"count": "x"})


def test_bind_inputs_default_is_a_copy():
    definition = _counter_flow()
    engine.bind_inputs(definition, {"count": 1})["tags"].append("mutated")
    assert engine.bind_inputs(definition, {"count": 1})["tags"] == ["a"]


SCOPE = Scope(
    inputs={"count": 3, "name": "ada", "flag": False},
    steps={"fetch": {"items": [{"id": 7}, {"id": 8}], "meta": {"ok": True}}, "none": None},
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${inputs.count}", 3),
        ("${inputs.flag}", False),
        ("${steps.fetch.output.items.1.id}", 8),
        ("${steps.fetch.output.meta}", {"ok": True}),
        ("${steps.none.output}", None),
        ("n=${inputs.count}", "n=3"),
        ("meta=${steps.fetch.output.meta} by ${inputs.name}", 'meta={"ok": true} by ada'),
        ({"deep": ["${inputs.count}", {"x": "${inputs.name}!"}]}, {"deep": [3, {"x": "ada!"}]}),
        ("no references, {braces} and $dollars", "no references, {braces} and $dollars"),
    ],
)
def test_references_resolve_keeping_types_for_exact_references(value, expected):
    assert resolve(value, SCOPE) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${steps.fetch.output.items.5}", 'no "5" in array'),
        ("${steps.fetch.output.missing}", 'no "missing" in object'),
        ("${inputs.name.__class__}", 'no "__class__" in str'),
        ("${steps.other.output}", 'no step "other"'),
    ],
)
def test_references_that_do_not_resolve_raise_value_error(value, message):
    with pytest.raises(ValueError, match=message):
        resolve(value, SCOPE)


def test_builtin_functions_are_callable_with_keyword_arguments():
    functions = engine.builtin_functions()
    assert functions["upper"](text="a") == "A"
    assert functions["concat"](items=["a", 1], separator="-") == "a-1"
    assert functions["add"](a=1, b=2) == 3
    assert functions["sum"](values=[1, 2, 3]) == 6
    assert functions["length"](value=[1, 2]) == 2
    assert functions["json_loads"](text=functions["json_dumps"](value={"b": 1})) == {"b": 1}
    assert engine.EngineConfig().python_functions.keys() == functions.keys()


def test_load_functions_registers_dotted_paths():
    assert engine.load_functions(["json.dumps"]) == {"json.dumps": json.dumps}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nodots", 'python function "nodots": expected a dotted path'),
        ("no_such_module_xyz.f", 'python function "no_such_module_xyz.f": cannot import'),
        (
            "json.no_such_function",
            'python function "json.no_such_function": "no_such_function" is not a callable',
        ),
    ],
)
def test_load_functions_names_the_bad_path(path, message):
    with pytest.raises(ValueError, match=message):
        engine.load_functions(["json.dumps", path])


def test_errors_carry_their_data_and_messages():
    assert str(engine.FlowNotFound("x")) == 'flow "x" not found'
    error = engine.StepError("boom", "it broke")
    assert (str(error), error.step) == ('step "boom": it broke', "boom")
    assert isinstance(engine.StepTimeout("slow", "timed out after 0.5s"), engine.StepError)
    assert str(engine.FlowValidationError(["a", "b"])) == "a; b"


def test_engine_imports_without_django_or_the_sdk():
    code = (
        "import sys, executions.engine; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework') "
        "or m.startswith('opentelemetry.sdk') or m == 'executions.models']; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[3]
    completed = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stdout + completed.stderr

"""The simple step types: templates without eval, fail, sleep, python functions and their output cap."""

from __future__ import annotations

import pytest

from executions import engine
from tests.executions.engine.support import run_step


def test_template_substitutes_without_evaluating() -> None:
    template = "{0.__class__} {{7*7}} $x ${inputs.name}: ${inputs.meta.role}"
    result = run_step({"name": "t", "type": "template", "template": template}, name="ada", meta={"role": "admin"})
    assert result.outputs == {"out": "{0.__class__} {{7*7}} $x ada: admin"}


def test_template_output_is_always_a_string() -> None:
    result = run_step({"name": "t", "type": "template", "template": "${inputs.meta}"}, meta={"a": [1]})
    assert result.outputs == {"out": '{"a": [1]}'}


def test_template_attribute_access_is_rejected_or_not_evaluated() -> None:
    with pytest.raises(engine.FlowValidationError, match="has no fields"):
        run_step({"name": "t", "type": "template", "template": "${inputs.name.__class__}"}, name="ada")
    with pytest.raises(engine.FlowValidationError, match="malformed expression"):
        run_step({"name": "t", "type": "template", "template": "${inputs.name.__class__()}"}, name="ada")
    result = run_step({"name": "t", "type": "template", "template": "${inputs.meta.__class__}"}, meta={"a": 1})
    assert result.error == 'step "t": cannot resolve ${inputs.meta.__class__}: no "__class__" in object'


def test_fail_step_uses_its_message() -> None:
    assert run_step({"name": "boom", "type": "fail", "message": "on purpose"}).error == 'step "boom": on purpose'
    assert run_step({"name": "boom", "type": "fail"}).error == 'step "boom": failed'


def test_sleep_step_completes() -> None:
    result = run_step({"name": "nap", "type": "sleep", "seconds": 0.01})
    assert result.status == "succeeded"
    assert result.outputs == {"out": None}


def test_python_step_non_json_output_fails() -> None:
    config = engine.EngineConfig(python_functions={"make_set": lambda: {1, 2}})
    result = run_step({"name": "p", "type": "python", "function": "make_set"}, config)
    assert result.error.startswith('step "p": output is not JSON-serialisable')


def test_python_step_output_over_the_cap_fails_the_step() -> None:
    result = run_step({"name": "p", "type": "python", "function": "multiply", "args": {"a": "é", "b": 1_000_000}})
    assert result.status == "failed"
    assert result.error == 'step "p": output is too large: 2000002 bytes (max 1048576)'
    assert result.steps[0].output is None


def test_run_outputs_over_the_cap_fail_the_run() -> None:
    config = engine.EngineConfig(max_output_bytes=1000)
    document = {
        "name": "big",
        "steps": [{"name": "t", "type": "template", "template": "x" * 600}],
        "outputs": {"a": "${steps.t.output}", "b": "${steps.t.output}"},
    }
    definition = engine.parse(document, config=config)
    result = engine.run(definition, {}, config=config)
    assert (result.status, result.error) == ("failed", "outputs: output is too large: 1218 bytes (max 1000)")


def test_multiply_refuses_to_repeat_a_sequence_into_gigabytes() -> None:
    step = {"name": "p", "type": "python", "function": "multiply", "args": {"a": "x", "b": 10**10}}
    assert run_step(step).error == 'step "p": ValueError: the result would have 10000000000 items (max 1048576)'
    step = {"name": "p", "type": "python", "function": "multiply", "args": {"a": 3, "b": [0]}}
    assert run_step(step).outputs == {"out": [0, 0, 0]}


@pytest.mark.parametrize(
    "args",
    [
        {"function": "concat", "args": {"items": ["a"] * 10, "separator": "x" * 200_000}},
        {"function": "replace", "args": {"text": "a" * 1000, "old": "a", "new": "b" * 2000}},
        {"function": "replace", "args": {"text": "a" * 1000, "old": "", "new": "b" * 2000}},
    ],
)
def test_pure_builtins_refuse_to_build_huge_results(args: dict) -> None:
    error = run_step({"name": "p", "type": "python", **args}).error
    assert error.startswith('step "p": ValueError: the result would have ') and error.endswith("(max 1048576)")


def test_concat_and_replace_still_work() -> None:
    concat = {"name": "p", "type": "python", "function": "concat", "args": {"items": [1, "b"], "separator": "-"}}
    assert run_step(concat).outputs == {"out": "1-b"}
    replace = {"name": "p", "type": "python", "function": "replace", "args": {"text": "aXa", "old": "a", "new": "bb"}}
    assert run_step(replace).outputs == {"out": "bbXbb"}

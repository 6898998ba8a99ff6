"""Every validation problem has one clear message, and all of a definition's problems come together."""

from __future__ import annotations

import json

import pytest

from executions import engine


def problems_of(document: dict, config: engine.EngineConfig | None = None) -> list[str]:
    """Parse a document that must be invalid and return its problems."""
    with pytest.raises(engine.FlowValidationError) as caught:
        engine.parse(document, config=config)
    return caught.value.problems


def flow(*steps: dict, **fields: object) -> dict:
    """A minimal flow document around some steps."""
    return {"name": "f", **fields, "steps": list(steps)}


TEMPLATE = {"name": "t", "type": "template", "template": "x"}


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"name": "x", "type": "foo"}, 'step "x": unknown type "foo"'),
        ({"name": "x"}, 'step "x": "type" is required'),
        ({"name": "x", "type": "template"}, 'step "x": "template" is required'),
        ({"name": "x", "type": "template", "template": 3}, 'step "x": "template" must be a string'),
        ({"name": "x", "type": "template", "template": "a", "colour": 1}, 'step "x": unknown field "colour"'),
        ({"name": "s", "type": "python", "function": "evil"}, 'step "s": unknown function "evil"'),
        (
            {"name": "s", "type": "python", "function": "upper", "args": [1]},
            'step "s": "args" must be an object',
        ),
        ({"name": "p", "type": "sleep", "seconds": "x"}, 'step "p": "seconds" must be a number'),
        ({"name": "p", "type": "sleep", "seconds": -1}, 'step "p": "seconds" must be between 0 and 300'),
        ({"name": "p", "type": "sleep", "seconds": 301}, 'step "p": "seconds" must be between 0 and 300'),
        (
            {"name": "h", "type": "http", "url": "http://a/", "method": "TRACE"},
            'step "h": "method" must be one of',
        ),
        (
            {"name": "h", "type": "http", "url": "http://a/", "headers": {"a": 1}},
            'step "h": "headers" must be an',
        ),
        (
            {"name": "h", "type": "http", "url": "http://a/", "json": {}, "body": ""},
            'step "h": "json" and "body"',
        ),
        ({"name": "h", "type": "http"}, 'step "h": "url" is required'),
        ({"name": "s", "type": "flow"}, 'step "s": "flow" is required'),
        ({"name": "s", "type": "flow", "flow": "bad name!"}, 'step "s": "flow" is not a valid flow name'),
        ({"name": "s", "type": "flow", "flow": "sub", "inputs": 3}, 'step "s": "inputs" must be an object'),
        ({"name": "x", "type": "fail", "message": ["a"]}, 'step "x": "message" must be a string'),
        ({"name": "x", "type": "fail", "timeout": 0}, 'step "x": "timeout" must be a positive number'),
        ({"name": "x", "type": "fail", "timeout": True}, 'step "x": "timeout" must be a positive number'),
        ({"name": "x", "type": "fail", "retries": 11}, 'step "x": "retries" must be an integer from 0 to 10'),
        (
            {"name": "x", "type": "fail", "retries": 1.5},
            'step "x": "retries" must be an integer from 0 to 10',
        ),
        ({"name": "x", "type": "fail", "after": "t"}, 'step "x": "after" must be a list of step names'),
        ({"name": "x", "type": "fail", "after": ["x"]}, 'step "x": cannot run after itself'),
        ({"name": "x", "type": "fail", "after": ["nope"]}, 'step "x": unknown step "nope" in after'),
        ({"name": "x", "type": "fail", "description": 1}, 'step "x": "description" must be a string'),
        ({"name": "1bad", "type": "fail"}, 'step #2: "name" must match'),
        ({"type": "fail"}, 'step #2: "name" must match'),
        ("not a step", "step #2: must be an object"),
    ],
)
def test_step_problem_messages(step, problem):
    problems = problems_of(flow(TEMPLATE, step))
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("${steps.helo.output}", 'step "shout": unknown step "helo" in ${steps.helo.output}'),
        ("${steps.shout.output}", 'step "shout": cannot use its own output in ${steps.shout.output}'),
        ("${inputs.nope}", 'step "shout": unknown input "nope" in ${inputs.nope}'),
        ("${bad}", 'step "shout": malformed expression "${bad}"'),
        ("${steps.t}", 'step "shout": malformed expression "${steps.t}"'),
        ("${7*7}", 'step "shout": malformed expression "${7*7}"'),
        ("${inputs.name.upper()}", 'step "shout": malformed expression "${inputs.name.upper()}"'),
        ("a ${inputs.name", 'step "shout": malformed expression "${inputs.name"'),
        (
            "${inputs.name.__class__}",
            'step "shout": input "name" is a string and has no fields, in ${inputs.name.__class__}',
        ),
    ],
)
def test_reference_problem_messages(template, problem):
    document = flow(
        TEMPLATE,
        {"name": "shout", "type": "template", "template": template},
        inputs={"name": {"type": "string"}},
    )
    assert problems_of(document) == [problem]


def test_references_are_checked_in_nested_fields():
    step = {
        "name": "s",
        "type": "python",
        "function": "echo",
        "args": {"value": {"list": ["${steps.gone.output}"]}},
    }
    assert problems_of(flow(step)) == ['step "s": unknown step "gone" in ${steps.gone.output}']


def test_paths_into_object_inputs_are_allowed():
    document = flow(
        {"name": "t", "type": "template", "template": "${inputs.user.name} ${inputs.ids.0}"},
        inputs={"user": {"type": "object"}, "ids": {"type": "array"}},
    )
    assert engine.parse(document).steps[0].depends_on == frozenset()


def test_references_in_typed_fields_are_left_for_run_time():
    step = {"name": "p", "type": "sleep", "seconds": "${inputs.wait}"}
    assert engine.parse(flow(step, inputs={"wait": {"type": "number"}})).steps[0].config["seconds"] == "${inputs.wait}"


def test_duplicate_step_names():
    assert problems_of(flow(TEMPLATE, TEMPLATE)) == ['duplicate step name "t"']


def test_cycles_name_their_steps():
    steps = [
        {"name": "a", "type": "template", "template": "${steps.c.output}"},
        {"name": "b", "type": "template", "template": "${steps.a.output}"},
        {"name": "c", "type": "fail", "after": ["b"]},
        {"name": "d", "type": "fail", "after": ["e"]},
        {"name": "e", "type": "fail", "after": ["d"]},
        {"name": "free", "type": "fail", "after": ["a"]},
    ]
    assert problems_of(flow(*steps)) == [
        'steps form a cycle: "a" -> "c" -> "b" -> "a"',
        'steps form a cycle: "d" -> "e" -> "d"',
    ]


def test_top_level_problems():
    problems = problems_of({"name": "has space", "version": 0, "description": 5, "extra": 1, "steps": []})
    assert problems == [
        'unknown field "extra"',
        '"name" is required: letters, digits, "_" or "-", at most 100 characters',
        '"version" must be a positive integer',
        '"description" must be a string',
        '"steps" must be a non-empty list',
    ]


def test_input_problems():
    inputs = {
        "count": {"type": "int"},
        "n": {"type": "integer", "default": "x"},
        "r": {"type": "string", "required": True, "default": "a"},
        "q": {"type": "string", "required": "yes", "colour": 1},
        "bad name": {"type": "string"},
        "z": "string",
    }
    assert problems_of(flow(TEMPLATE, inputs=inputs)) == [
        'input "count": unknown type "int" (expected one of string, integer, number, boolean, object, array)',
        'input "n": default expected integer, got "x"',
        'input "r": a required input cannot have a default',
        'input "q": unknown field "colour"',
        'input "q": "required" must be a boolean',
        'input "bad name": invalid name',
        'input "z": must be an object',
    ]


def test_output_problems():
    document = flow(
        TEMPLATE,
        outputs={"a": "${steps.missing.output}", "b": "${inputs.nope}", "c": {"x": "${oops}"}},
    )
    assert problems_of(document) == [
        'output "a": unknown step "missing" in ${steps.missing.output}',
        'output "b": unknown input "nope" in ${inputs.nope}',
        'output "c": malformed expression "${oops}"',
    ]
    assert problems_of(flow(TEMPLATE, outputs=["a"])) == ['"outputs" must be an object']


def test_too_many_steps():
    steps = [{"name": f"s{index}", "type": "fail"} for index in range(4)]
    assert problems_of(flow(*steps), engine.EngineConfig(max_steps=3)) == ["too many steps: 4 (max 3)"]


def test_oversized_definition():
    document = flow(TEMPLATE, description="x" * 500)
    size = len(json.dumps(document).encode())
    assert problems_of(document, engine.EngineConfig(max_definition_bytes=300)) == [
        f"definition is too large: {size} bytes (max 300)"
    ]


def test_unknown_function_depends_on_the_configured_registry():
    step = {"name": "s", "type": "python", "function": "json.dumps", "args": {"obj": 1}}
    assert problems_of(flow(step)) == ['step "s": unknown function "json.dumps"']
    config = engine.EngineConfig(python_functions=engine.load_functions(["json.dumps"]))
    assert engine.parse(flow(step), config=config).steps[0].type == "python"


def test_http_url_hosts_are_not_checked_at_parse_time():
    step = {"name": "h", "type": "http", "method": "GET", "url": "http://not-allowed.example/x"}
    assert engine.parse(flow(step)).steps[0].config["url"] == "http://not-allowed.example/x"


def test_all_problems_are_reported_together():
    document = {
        "name": "many",
        "bogus": True,
        "steps": [
            {"name": "x", "type": "foo"},
            {"name": "s", "type": "python", "function": "evil"},
            {"name": "shout", "type": "template", "template": "${steps.helo.output}"},
            {"name": "p", "type": "sleep", "seconds": "x"},
            {"name": "p", "type": "fail"},
        ],
        "outputs": {"o": "${steps.gone.output}"},
    }
    problems = problems_of(document)
    assert problems == [
        'unknown field "bogus"',
        'step "x": unknown type "foo"',
        'step "s": unknown function "evil"',
        'step "shout": unknown step "helo" in ${steps.helo.output}',
        'step "p": "seconds" must be a number',
        'duplicate step name "p"',
        'output "o": unknown step "gone" in ${steps.gone.output}',
    ]
    with pytest.raises(engine.FlowValidationError) as caught:
        engine.parse(document)
    assert str(caught.value) == "; ".join(problems)


def test_inputs_are_secret_when_declared_or_named_like_a_redaction_key():
    definition = engine.parse(
        {
            "name": "s",
            "inputs": {
                "key": {"type": "string", "secret": True},
                "db_password": {"type": "string"},
                "token_limit": {"type": "integer", "secret": False},
                "pin": {"type": "string"},
                "name": {"type": "string"},
            },
            "steps": [{"name": "a", "type": "template", "template": "x"}],
        },
        config=engine.EngineConfig(redact_keys=frozenset({"pin"})),
    )
    assert engine.secret_inputs(definition) == {"key", "db_password", "pin"}
    assert definition.inputs["key"].secret and not definition.inputs["name"].secret


def test_secret_must_be_a_boolean():
    problems = problems_of({"inputs": {"k": {"type": "string", "secret": "yes"}}})
    assert 'input "k": "secret" must be a boolean' in problems


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"retry_delay": -1}, '"retry_delay" must be a number of seconds from 0 to 300'),
        ({"retry_delay": "1"}, '"retry_delay" must be a number of seconds from 0 to 300'),
        ({"retry_delay": 301}, '"retry_delay" must be a number of seconds from 0 to 300'),
        ({"retry_backoff": 0.5}, '"retry_backoff" must be a number from 1 to 10'),
        ({"retry_backoff": True}, '"retry_backoff" must be a number from 1 to 10'),
    ],
)
def test_retry_delay_and_backoff_are_validated(fields, problem):
    problems = problems_of({"steps": [{"name": "a", "type": "fail", "retries": 2, **fields}]})
    assert f'step "a": {problem}' in problems


def test_retry_delay_and_backoff_land_on_the_spec():
    definition = engine.parse(
        {"name": "r", "steps": [{"name": "a", "type": "fail", "retries": 2, "retry_delay": 0.5, "retry_backoff": 3}]}
    )
    assert (definition.steps[0].retry_delay, definition.steps[0].retry_backoff) == (0.5, 3)


def test_binding_errors_do_not_echo_a_secret_value():
    definition = engine.parse(
        {"name": "s", "inputs": {"pin_password": {"type": "integer"}}, "steps": [{"name": "a", "type": "fail"}]}
    )
    with pytest.raises(engine.FlowValidationError) as caught:
        engine.bind_inputs(definition, {"pin_password": "hunter2"})
    assert caught.value.problems == ['input "pin_password": expected integer, got [REDACTED]']

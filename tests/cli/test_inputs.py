"""flowexec.cli.inputs: the one --input syntax; and how parser merges it with --inputs-file."""

from __future__ import annotations

import pytest

from flowexec.cli import errors, parser
from flowexec.cli.inputs import InputSyntaxError, parse_pairs


def test_inputs_merge_file_then_pairs_with_json_values(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('{"name": "file", "numbers": [1]}')
    inputs = parser.read_inputs(["name=Ada", "numbers:=[1, 2]", "flag:=true", "text=a=b"], str(path))
    assert inputs == {"name": "Ada", "numbers": [1, 2], "flag": True, "text": "a=b"}


def test_one_input_syntax_key_value_is_a_string_and_key_colon_equals_is_json():
    assert parse_pairs(["name=42", "count:=42", "ratio:=0.5", "on:=true", "none:=null"]) == {
        "name": "42",
        "count": 42,
        "ratio": 0.5,
        "on": True,
        "none": None,
    }
    assert parse_pairs(['tags:=["a", "b"]', 'opts:={"a": 1}', "text=[1, 2]"]) == {
        "tags": ["a", "b"],
        "opts": {"a": 1},
        "text": "[1, 2]",
    }


@pytest.mark.parametrize(
    ("pair", "fragment"),
    [("novalue", "expected KEY=VALUE"), ("=x", "expected KEY=VALUE"), ("n:=nope", "not JSON")],
)
def test_malformed_input_pairs_are_usage_errors(pair, fragment):
    with pytest.raises(InputSyntaxError, match=fragment):
        parse_pairs([pair])
    with pytest.raises(errors.CliError) as caught:
        parser.read_inputs([pair], None)
    assert caught.value.exit_code == errors.EXIT_USAGE
    assert fragment in caught.value.message


def test_inputs_file_must_hold_a_json_object(tmp_path):
    path = tmp_path / "in.json"
    path.write_text("[1, 2]")
    with pytest.raises(errors.CliError, match="expected a JSON object") as caught:
        parser.read_inputs([], str(path))
    assert caught.value.exit_code == errors.EXIT_USAGE

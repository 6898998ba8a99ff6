"""The one definition loader: size before parsing, no YAML aliases, bounded nesting, a storable top-level object."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from executions import engine

pytestmark = pytest.mark.hardening

# The 511-byte body from issue 9: nine levels of nine aliases each (9**9 leaves once expanded).
BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


def refused(source: object, match: str, **options: object) -> engine.FlowValidationError:
    """Load a source expecting a FlowValidationError whose message matches."""
    load = engine.load_document if isinstance(source, str | bytes) else engine.load
    with pytest.raises(engine.FlowValidationError, match=match) as caught:
        load(source, **options)
    return caught.value


def test_the_alias_bomb_is_refused_at_once_with_bounded_memory():
    assert len(BILLION_LAUGHS.encode()) < 520
    tracemalloc.start()
    began = time.monotonic()
    try:
        refused(BILLION_LAUGHS, "YAML anchors and aliases are not allowed")
        elapsed = time.monotonic() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 5 * 1024 * 1024


def test_an_anchor_without_an_alias_is_refused_too():
    refused("name: &n x\nsteps: []\n", "YAML anchors and aliases are not allowed")


def test_the_size_limit_applies_to_raw_bytes_before_parsing():
    body = "name: x\nsteps:\n" + "  - {name: s, type: template, template: " + "y" * (50 * 1024 * 1024) + "}\n"
    began = time.monotonic()
    refused(body.encode(), r"definition is too large: 5\d{7} bytes \(max 262144\)")
    assert time.monotonic() - began < 1.0


@pytest.mark.parametrize("syntax", ["json", "auto"])
def test_json_nested_ten_thousand_levels_is_a_validation_error(syntax):
    deep = '{"name": "x", "steps": ' + "[" * 10_000 + "]" * 10_000 + "}"
    refused(deep, r"nested too deeply \(max 64 levels\)", syntax=syntax, max_bytes=10**6)


@pytest.mark.parametrize(
    "deep",
    ["steps: " + "[" * 1000 + "]" * 1000 + "\n", "steps:\n" + "".join("  " * n + "- \n" for n in range(1000))],
)
def test_yaml_nested_a_thousand_levels_is_a_validation_error(deep):
    refused(deep, r"nested too deeply", max_bytes=10**7)


def test_an_already_parsed_deep_mapping_is_a_validation_error_not_a_recursion_error():
    value: list = []
    for _ in range(10_000):
        value = [value]
    refused({"name": "x", "steps": value}, "nested too deeply")
    with pytest.raises(engine.FlowValidationError, match=r"max 2 levels"):
        engine.check_depth({"a": [{"b": 1}]}, 2)
    engine.check_depth({"a": [{"b": 1}]}, 3)


@pytest.mark.parametrize("body", ["- null", "null", "123", "[]", "", "   \n", '"text"'])
def test_the_top_level_must_be_an_object(body):
    refused(body, "definition must be an object")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('{"name": NaN}', "NaN is not a JSON number"),
        ("x: .inf", "not JSON-serialisable"),
        ('{"name": "a\\u0000b"}', "NUL character"),
        ('{"name": "\\udfff"}', "not JSON-serialisable"),
        (b'{"name": "\xff"}', "not UTF-8"),
    ],
)
def test_documents_no_database_can_store_are_refused(body, match):
    refused(body, match, syntax="auto")


def test_an_escaped_backslash_before_u0000_is_not_a_nul():
    assert engine.load_document('{"name": "a\\\\u0000"}') == {"name": "a\\u0000"}


def test_json_syntax_refuses_yaml_and_yaml_syntax_accepts_json():
    refused("name: x", "request body is not valid JSON", syntax="json", label="request body")
    assert engine.load_document('{"name": "x"}', syntax="yaml") == {"name": "x"}


def test_yaml_dates_stay_text():
    assert engine.load_document("when: 2024-01-01") == {"when": "2024-01-01"}


def test_parse_goes_through_the_loader():
    with pytest.raises(engine.FlowValidationError, match="anchors and aliases"):
        engine.parse(BILLION_LAUGHS)
    with pytest.raises(engine.FlowValidationError, match="nested too deeply"):
        engine.parse(json.dumps({"name": "x", "steps": [{"name": "a", "type": "fail", "x": [[[[[[1]]]]]]}]}),
                     config=engine.EngineConfig(max_nesting=5))

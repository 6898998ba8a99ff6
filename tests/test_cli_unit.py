"""Unit tests of the CLI's pure parts: input parsing, error flattening, rendering, progress."""

from __future__ import annotations

import argparse
import io

import pytest

from flowexec import cli


def test_inputs_merge_file_then_pairs_with_json_values(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('{"name": "file", "numbers": [1]}')
    inputs = cli.parse_inputs(["name=Ada", "numbers:=[1, 2]", "flag:=true", "text=a=b"], str(path))
    assert inputs == {"name": "Ada", "numbers": [1, 2], "flag": True, "text": "a=b"}


@pytest.mark.parametrize(
    ("pair", "fragment"),
    [("novalue", "expected KEY=VALUE"), ("=x", "expected KEY=VALUE"), ("n:=nope", "not JSON")],
)
def test_malformed_input_pairs_are_usage_errors(pair, fragment):
    with pytest.raises(cli.CliError) as caught:
        cli.parse_inputs([pair], None)
    assert caught.value.exit_code == cli.EXIT_USAGE
    assert fragment in caught.value.message


def test_inputs_file_must_hold_a_json_object(tmp_path):
    path = tmp_path / "in.json"
    path.write_text("[1, 2]")
    with pytest.raises(cli.CliError, match="expected a JSON object") as caught:
        cli.parse_inputs([], str(path))
    assert caught.value.exit_code == cli.EXIT_USAGE


def test_settings_come_from_options_then_environment():
    args = cli.build_parser().parse_args(["run", "hello", "--json", "--timeout", "5"])
    settings = cli.settings_from_args(args, {"FLOWEXEC_URL": "http://127.0.0.1:9/", "FLOWEXEC_TOKEN": "t"})
    assert (settings.url, settings.token, settings.timeout, settings.json) == (
        "http://127.0.0.1:9",
        "t",
        5,
        True,
    )
    assert len(settings.request_id) == 36
    args = cli.build_parser().parse_args(["--url", "http://h:1", "--request-id", "rid-1", "flows"])
    settings = cli.settings_from_args(args, {"FLOWEXEC_URL": "http://ignored"})
    assert (settings.url, settings.request_id, settings.json) == ("http://h:1", "rid-1", False)


@pytest.mark.parametrize("argv", [["--url", "ftp://x", "flows"], ["--request-id", "a b", "flows"]])
def test_invalid_settings_are_usage_errors(argv):
    args = cli.build_parser().parse_args(argv)
    with pytest.raises(cli.CliError) as caught:
        cli.settings_from_args(args, {})
    assert caught.value.exit_code == cli.EXIT_USAGE


def test_error_bodies_flatten_to_one_line():
    body = {
        "detail": "Invalid inputs",
        "problems": ['input "count": expected integer, got "x"', 'step "a": boom'],
    }
    assert cli.describe_error_body(body) == 'input "count": expected integer, got "x"; step "a": boom'
    assert cli.describe_error_body({"flow": ["This field is required."]}) == "flow: This field is required."
    assert cli.describe_error_body({"detail": "Not found."}) == "Not found."


def test_trace_renders_an_indented_tree_with_services_durations_and_errors():
    data = {
        "trace_id": "ab" * 16,
        "spans": [
            {
                "name": "flowexec run",
                "service_name": "flowexec-cli",
                "kind": "INTERNAL",
                "duration_ms": 120.5,
                "status": "UNSET",
                "start_time": "1",
                "children": [
                    {
                        "name": "POST",
                        "service_name": "flowexec-cli",
                        "kind": "CLIENT",
                        "duration_ms": 100,
                        "status": "UNSET",
                        "start_time": "2",
                        "children": [
                            {
                                "name": "step boom",
                                "service_name": "flowexec-service",
                                "kind": "INTERNAL",
                                "duration_ms": 3,
                                "status": "ERROR",
                                "status_message": "this step\nalways fails",
                                "start_time": "3",
                                "children": [],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    lines = cli.render_trace(data).splitlines()
    assert lines == [
        f"trace {'ab' * 16}",
        "  flowexec run  [flowexec-cli]  120.5 ms",
        "    POST  [flowexec-cli]  client  100.0 ms",
        "      step boom  [flowexec-service]  3.0 ms  ERROR: this step always fails",
    ]


def test_execution_rendering_shows_outputs_ids_and_where_the_trace_is():
    execution = {
        "id": "e-1",
        "flow": "hello",
        "flow_version": 1,
        "status": "succeeded",
        "outputs": {"greeting": "Hello, Ada!"},
        "trace_id": "t" * 32,
        "request_id": "rid",
        "duration_ms": 12,
        "links": {"admin": "http://svc/admin/x/", "trace_ui": "http://jaeger/trace/tt"},
    }
    text = cli.render_execution(execution, "http://svc", steps=False)
    assert '"greeting": "Hello, Ada!"' in text
    for fragment in (
        "execution id: e-1",
        f"trace id:     {'t' * 32}",
        "admin:        http://svc/admin/x/",
        "trace UI:     http://jaeger/trace/tt",
        f"flowexec --url http://svc trace {'t' * 32}",
    ):
        assert fragment in text
    assert "trace UI" not in cli.render_execution({**execution, "links": {"trace_ui": None}}, "u", steps=False)


def test_progress_counts_finished_steps_and_stays_silent_off_a_terminal():
    execution = {
        "flow": "slow",
        "status": "running",
        "step_count": 3,
        "steps": [{"status": "succeeded"}, {"status": "running"}],
    }
    assert cli.progress_line(execution, 1.25) == "slow: running, 1/3 steps, 1.2s elapsed"
    quiet = io.StringIO()
    cli.Progress(quiet, enabled=False).update(execution, 1.0)
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    progress = cli.Progress(shown, enabled=True)
    progress.update(execution, 1.0)
    progress.close()
    assert "1/3 steps" in shown.getvalue()
    assert shown.getvalue().endswith("\r\033[K")


def test_execution_and_trace_ids_are_checked_before_any_request():
    parser = cli.build_parser()
    args = parser.parse_args(["trace", "AB" * 16])
    cli._check_arguments(args)
    assert args.trace_id == "ab" * 16
    for argv in (["trace", "xyz"], ["get", "12"], ["cancel", "not-a-uuid"]):
        with pytest.raises(cli.CliError) as caught:
            cli._check_arguments(parser.parse_args(argv))
        assert caught.value.exit_code == cli.EXIT_USAGE


def test_options_work_before_and_after_the_command():
    args = cli.build_parser().parse_args(["--json", "run", "hello", "--url", "http://h:1"])
    assert isinstance(args, argparse.Namespace)
    assert (args.json, args.url, args.flow) == (True, "http://h:1", "hello")

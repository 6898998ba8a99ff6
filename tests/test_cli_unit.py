"""Unit tests of the CLI's pure parts: input syntax, settings, token policy, rendering, completion."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from flowexec.cli import client, completion, config, errors, parser, render, telemetry
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


def settings_for(argv, environ):
    """Settings from argv and an environment without any config file."""
    return config.settings_from_args(parser.build_parser().parse_args(argv), {"HOME": "/nonexistent", **environ})


def test_settings_come_from_options_then_environment():
    settings = settings_for(
        ["run", "hello", "--json", "--timeout", "5"], {"FLOWEXEC_URL": "http://127.0.0.1:9/", "FLOWEXEC_TOKEN": "t"}
    )
    assert (settings.url, settings.token, settings.timeout, settings.json) == (
        "http://127.0.0.1:9",
        "t",
        5,
        True,
    )
    assert len(settings.request_id) == 36
    settings = settings_for(["--url", "http://h:1", "--request-id", "rid-1", "flows"], {"FLOWEXEC_URL": "http://x"})
    assert (settings.url, settings.request_id, settings.json) == ("http://h:1", "rid-1", False)


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "ftp://x", "flows"],
        ["--request-id", "a b", "flows"],
        # The service's rule (tracing.attributes.REQUEST_ID_PATTERN): at most 128 of [A-Za-z0-9._:@/+=-].
        ["--request-id", "r" * 129, "flows"],
        ["--request-id", "caf\u00e9", "flows"],
        ["--request-id", "a;b", "flows"],
    ],
)
def test_invalid_settings_are_usage_errors(argv):
    with pytest.raises(errors.CliError) as caught:
        settings_for(argv, {})
    assert caught.value.exit_code == errors.EXIT_USAGE


def test_request_ids_the_service_accepts_are_accepted():
    for request_id in ("r" * 128, "ci:build/42@main+x=1.a_b-c"):
        assert settings_for(["--request-id", request_id, "flows"], {}).request_id == request_id


def test_the_callers_request_id_in_baggage_is_used_unless_one_is_given():
    assert settings_for(["flows"], {"BAGGAGE": "a=1,request_id=ci-7"}).request_id == "ci-7"
    assert settings_for(["--request-id", "mine", "flows"], {"BAGGAGE": "request_id=ci-7"}).request_id == "mine"
    # Not an id the service accepts: ignored like any invalid carrier value, so a fresh UUID.
    assert len(settings_for(["flows"], {"BAGGAGE": "request_id=has%20space"}).request_id) == 36


def test_config_file_supplies_url_and_token_below_environment_and_options(tmp_path):
    path = tmp_path / "config"
    path.write_text('url = "http://from-file:1"\ntoken = "file-token"\n')
    path.chmod(0o600)
    settings = settings_for(["flows"], {"FLOWEXEC_CONFIG": str(path)})
    assert (settings.url, settings.token) == ("http://from-file:1", "file-token")
    settings = settings_for(["flows"], {"FLOWEXEC_CONFIG": str(path), "FLOWEXEC_TOKEN": "env-token"})
    assert (settings.url, settings.token) == ("http://from-file:1", "env-token")
    settings = settings_for(["--token", "opt", "--url", "http://o:2", "flows"], {"FLOWEXEC_CONFIG": str(path)})
    assert (settings.url, settings.token) == ("http://o:2", "opt")
    # The default place: $XDG_CONFIG_HOME/flowexec/config.
    (tmp_path / "flowexec").mkdir()
    (tmp_path / "flowexec" / "config").write_text('url = "http://xdg:3"\n')
    assert settings_for(["flows"], {"XDG_CONFIG_HOME": str(tmp_path)}).url == "http://xdg:3"


@pytest.mark.parametrize(
    ("text", "mode", "fragment"),
    [
        ('token = "t"\n', 0o644, "chmod 600"),
        ('token = "t"\n', 0o640, "chmod 600"),
        ('colour = "blue"\n', 0o600, "unknown key 'colour'"),
        ("url = \n", 0o600, "invalid config file"),
    ],
)
def test_bad_config_files_are_usage_errors(tmp_path, text, mode, fragment):
    path = tmp_path / "config"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(errors.CliError, match=fragment) as caught:
        settings_for(["flows"], {"FLOWEXEC_CONFIG": str(path)})
    assert caught.value.exit_code == errors.EXIT_USAGE
    with pytest.raises(errors.CliError, match="does not exist"):
        settings_for(["--config", str(tmp_path / "missing"), "flows"], {})


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        ({}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://svc:8000/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://SVC:8000/"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://svc:4318/v1/traces"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://svc:8000/v1/traces"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://svc:8000/other"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://svc:8000"}, False),
    ],
)
def test_the_token_rides_only_on_export_to_the_services_own_v1_traces_over_http(environ, allowed):
    settings = settings_for(["--url", "http://svc:8000", "--token", "k", "flows"], {})
    headers = telemetry.cli_tracing_config(settings, environ).otlp.headers
    assert dict(headers) == ({"Authorization": "Token k"} if allowed else {})


def test_default_ports_count_as_the_same_origin():
    environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://svc.example/api/v1/traces"}
    for url, allowed in (("https://svc.example:443/api", True), ("https://svc.example:443", False)):
        settings = settings_for(["--url", url, "--token", "k", "flows"], {})
        assert bool(telemetry.cli_tracing_config(settings, environ).otlp.headers) is allowed


def test_headers_the_operator_set_are_kept_and_no_token_is_added():
    settings = settings_for(["--url", "http://svc:8000", "--token", "k", "flows"], {})
    environ = {"OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=abc"}
    assert dict(telemetry.cli_tracing_config(settings, environ).otlp.headers) == {"x-collector-key": "abc"}


def test_error_bodies_flatten_to_one_line():
    body = {
        "detail": "Invalid inputs",
        "problems": ['input "count": expected integer, got "x"', 'step "a": boom'],
    }
    assert client.describe_error_body(body) == 'input "count": expected integer, got "x"; step "a": boom'
    assert client.describe_error_body({"flow": ["This field is required."]}) == "flow: This field is required."
    assert client.describe_error_body({"detail": "Not found."}) == "Not found."


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
    lines = render.render_trace(data).splitlines()
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
    text = render.render_execution(execution, "http://svc", steps=False)
    assert '"greeting": "Hello, Ada!"' in text
    for fragment in (
        "execution id: e-1",
        f"trace id:     {'t' * 32}",
        "admin:        http://svc/admin/x/",
        "trace UI:     http://jaeger/trace/tt",
        f"flowexec --url http://svc trace {'t' * 32}",
    ):
        assert fragment in text
    assert "trace UI" not in render.render_execution({**execution, "links": {"trace_ui": None}}, "u", steps=False)


def test_progress_counts_finished_steps_and_stays_silent_off_a_terminal():
    execution = {
        "flow": "slow",
        "status": "running",
        "step_count": 3,
        "steps": [{"status": "succeeded"}, {"status": "running"}],
    }
    assert render.progress_line(execution, 1.25) == "slow: running, 1/3 steps, 1.2s elapsed"
    quiet = io.StringIO()
    render.Progress(quiet, enabled=False).update(execution, 1.0)
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    progress = render.Progress(shown, enabled=True)
    progress.update(execution, 1.0)
    progress.close()
    assert "1/3 steps" in shown.getvalue()
    assert shown.getvalue().endswith("\r\033[K")


def test_execution_and_trace_ids_are_checked_before_any_request():
    built = parser.build_parser()
    args = built.parse_args(["trace", "AB" * 16])
    parser.check_arguments(args)
    assert args.trace_id == "ab" * 16
    for argv in (
        ["trace", "xyz"],
        ["get", "12"],
        ["cancel", "not-a-uuid"],
        ["watch", "nope"],
        ["list", "--limit", "0"],
        ["list", "--since", "yesterday"],
        ["list", "--trace-id", "xyz"],
        ["list", "--request-id", "a b"],
    ):
        with pytest.raises(errors.CliError) as caught:
            parser.check_arguments(built.parse_args(argv))
        assert caught.value.exit_code == errors.EXIT_USAGE


def test_options_work_before_and_after_the_command():
    args = parser.build_parser().parse_args(["--json", "run", "hello", "--url", "http://h:1"])
    assert isinstance(args, argparse.Namespace)
    assert (args.json, args.url, args.flow) == (True, "http://h:1", "hello")


def test_request_id_after_list_is_a_filter_and_before_it_the_header():
    args = parser.build_parser().parse_args(["--request-id", "sent", "list", "--request-id", "wanted"])
    assert (args.request_id, args.filter_request_id) == ("sent", "wanted")


def test_since_takes_durations_and_iso_times():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parser.parse_since("90s", now) == now - timedelta(seconds=90)
    assert parser.parse_since("10m", now) == now - timedelta(minutes=10)
    assert parser.parse_since("2h", now) == now - timedelta(hours=2)
    assert parser.parse_since("1d", now) == now - timedelta(days=1)
    assert parser.parse_since("2026-01-01T00:00:00Z", now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parser.parse_since("2026-01-01", now) == datetime(2026, 1, 1, tzinfo=UTC)


def test_bash_completion_is_generated_from_the_parser_and_completes_commands_and_options():
    script = completion.bash_script(parser.build_parser())
    assert "complete -F _flowexec_complete flowexec" in script

    def complete(*words: str) -> set[str]:
        line = " ".join(["flowexec", *words])
        probe = (
            f"{script}\nCOMP_WORDS=(flowexec {' '.join(words)}); COMP_CWORD={len(words)}; "
            f"COMP_LINE={line!r}; _flowexec_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=10, env=os.environ)
        assert done.returncode == 0, done.stderr
        return set(done.stdout.split())

    assert {"run", "watch", "get", "cancel", "list", "flows", "trace", "completion"} <= complete("")
    assert complete("fl") == {"flows"}
    assert {"apply", "validate", "list"} <= complete("flows", "")
    assert {"--limit", "--since", "--trace-id", "--client"} <= complete("list", "--")
    assert {"--detach", "--input", "--inputs-file"} <= complete("--url", "http://h", "run", "hello", "--")
    assert "--async" not in complete("run", "hello", "--")  # hidden spellings stay hidden
    assert complete("list", "--status", "f") == {"failed"}
    assert {"bash", "zsh"} == complete("completion", "")
    zsh = completion.zsh_script(parser.build_parser())
    assert zsh.startswith("#compdef flowexec") and "bashcompinit" in zsh and script in zsh

"""flowexec.cli.parser: options before or after the command, local argument checks, --since."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from flowexec.cli import errors, parser


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


def test_the_docs_spell_run_with_its_documented_options_not_the_hidden_old_ones():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subcommands = next(a for a in parser.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    hidden = {
        option
        for action in subcommands.choices["run"]._actions
        if action.help == argparse.SUPPRESS
        for option in action.option_strings
    }
    assert "--async" in hidden
    docs = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "scripts").glob("*")]
    found = [
        (doc.name, line)
        for doc in docs
        if doc.is_file()
        for line in doc.read_text().splitlines()
        if "flowexec run" in line and any(f"{option}`" in line or f"{option} " in line for option in hidden)
    ]
    assert not found

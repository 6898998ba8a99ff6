"""Helpers for the CLI package's unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flowexec.cli import config, parser


def settings_for(argv: Sequence[str], environ: Mapping[str, str]) -> config.Settings:
    """Settings from argv and an environment without any config file."""
    return config.settings_from_args(parser.build_parser().parse_args(argv), {"HOME": "/nonexistent", **environ})

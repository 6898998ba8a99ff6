"""Exit codes and the one error type the CLI turns into a stderr line."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FLOW_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
# A bug in the CLI, not the flow's outcome: scripts can tell it apart from "the flow failed" (1).
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
# What a shell reports for a process killed by SIGPIPE (128 + 13): `flowexec list | head` ends like `yes | head`.
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A failure reported as one line on stderr with a specific exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

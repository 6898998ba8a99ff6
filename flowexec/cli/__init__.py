"""flowexec command-line client: run flows on a flowexec service over HTTP, traced end to end.

Parts that change for their own reasons: `parser` (argv, help, local checks), `config` (options, env,
config file), `inputs` (the --input syntax every client shares), `client` (HTTP and its error mapping),
`commands` and `flowfiles` (what each command does), `render` (human output), `telemetry` (tracing),
`completion` (shell scripts from the parser), `main` (the entry point and exit codes).
"""

from flowexec.cli.main import console, main

__all__ = ["console", "main"]

"""`python -m flowexec.cli`."""

from flowexec.cli.main import console

console()

"""flowexec.cli.main: the `flowexec` command runs main(), the exit handlers, then leaves without the teardown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.live import base_env

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import atexit, sys
from flowexec.cli import console

class Teardown:
    def __del__(self):
        print("module teardown ran", flush=True)

keep = Teardown()  # freed only when the interpreter tears its modules down
atexit.register(lambda: print("exit handler ran"))  # buffered: console() must flush it
console(sys.argv[1:])
"""


def run_console(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=ROOT, env=base_env(PYTHONUNBUFFERED=""),
                          capture_output=True, text=True, timeout=60)


def test_the_command_exits_with_mains_code_after_the_exit_handlers_and_skips_the_teardown(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"name": "good", "steps": [{"name": "a", "type": "template", "template": "x"}]}')
    ok = run_console("flows", "validate", str(good))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"valid     good  ({good})", "exit handler ran"]
    invalid = run_console("run", "x", "--input", "no-equals-sign")
    assert invalid.returncode == 2
    assert invalid.stdout == "exit handler ran\n"
    assert invalid.stderr.startswith("flowexec: ")

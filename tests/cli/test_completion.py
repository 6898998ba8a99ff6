"""flowexec.cli.completion: bash/zsh scripts generated from the parser, run in a real bash."""

from __future__ import annotations

import os
import subprocess

from flowexec.cli import completion, parser


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

"""Management commands: loadflows and in-process runflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from executions.models import Execution, Flow
from tests.live import EXAMPLES

pytestmark = pytest.mark.django_db(transaction=True)


def test_loadflows_is_idempotent_and_versions_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("loadflows", str(EXAMPLES))
    loaded = Flow.objects.count()
    assert loaded >= 5 and set(Flow.objects.values_list("name", flat=True)) >= {
        "hello",
        "parallel",
        "failing",
    }
    call_command("loadflows", str(EXAMPLES))
    assert Flow.objects.count() == loaded
    changed = json.loads((EXAMPLES / "hello.json").read_text())
    changed["description"] = "changed"
    (tmp_path / "hello.json").write_text(json.dumps(changed))
    call_command("loadflows", str(tmp_path / "hello.json"))
    assert Flow.objects.filter(name="hello").count() == 2
    assert "loaded    hello v2" in capsys.readouterr().out


def test_loadflows_reports_invalid_files_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"name": "bad", "steps": [{"name": "a", "type": "teleport"}]}')
    with pytest.raises(CommandError) as raised:
        call_command("loadflows", str(tmp_path))
    assert raised.value.returncode == 2
    assert 'bad.json: step "a": unknown type "teleport"' in str(raised.value)


def test_runflow_prints_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("loadflows", str(EXAMPLES))
    call_command("runflow", "hello", "--input", "name=Ada")
    out = capsys.readouterr().out
    assert '"shouted": "HELLO, ADA!"' in out
    execution = Execution.objects.get()
    assert execution.client == "manage" and execution.status == "succeeded"


def test_runflow_exits_1_when_the_flow_fails() -> None:
    call_command("loadflows", str(EXAMPLES))
    with pytest.raises(SystemExit) as raised:
        call_command("runflow", "failing")
    assert raised.value.code == 1
    assert Execution.objects.get().status == "failed"


def test_runflow_unknown_flow_is_exit_2() -> None:
    with pytest.raises(CommandError) as raised:
        call_command("runflow", "nope")
    assert raised.value.returncode == 2


def test_runflow_input_syntax_is_the_clis_key_value_is_a_string(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("loadflows", str(EXAMPLES))
    call_command("runflow", "hello", "--input", "name=42")  # "name" is a string input: "42", not 42
    assert '"shouted": "HELLO, 42!"' in capsys.readouterr().out
    assert Execution.objects.get().inputs == {"name": "42"}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--input", "novalue"], "expected KEY=VALUE"),
        (["--input", "name:=not-json"], "not JSON"),
        (["--request-id", "has space"], "invalid --request-id"),
        (["--request-id", "r" * 129], "invalid --request-id"),
    ],
)
def test_runflow_usage_errors_exit_2_before_running(argv: list[str], fragment: str) -> None:
    call_command("loadflows", str(EXAMPLES))
    with pytest.raises(CommandError, match=fragment) as raised:
        call_command("runflow", "hello", *argv)
    assert raised.value.returncode == 2
    assert not Execution.objects.exists()


def test_runflow_takes_the_callers_request_id_from_baggage(monkeypatch: pytest.MonkeyPatch) -> None:
    call_command("loadflows", str(EXAMPLES))
    monkeypatch.setenv("BAGGAGE", "ci.pipeline=main,request_id=ci-7")
    call_command("runflow", "hello")
    assert Execution.objects.get().request_id == "ci-7"

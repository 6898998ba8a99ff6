"""Running flows: concurrency on a bounded pool, failures, retries, timeouts, cancellation, sub-flows."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest

from executions import engine
from executions.engine import scheduler
from tracing.redaction import SecretsLogFilter

WAIT = 5.0  # upper bound for every wait in these tests


def config_with(**functions: Callable[..., Any]) -> engine.EngineConfig:
    """An EngineConfig whose registry has the built-ins plus test functions."""
    return engine.EngineConfig(python_functions={**engine.builtin_functions(), **functions})


def run_flow(document: dict, config: engine.EngineConfig, hooks: Any = None, **inputs: Any) -> engine.RunResult:
    """Parse, bind and run a document."""
    definition = engine.parse(document, config=config)
    return engine.run(definition, engine.bind_inputs(definition, inputs), config=config, hooks=hooks)


def call(name: str, function: str, **fields: Any) -> dict:
    """A python step calling a registered function."""
    return {"name": name, "type": "python", "function": function, **fields}


class RecordingHooks(engine.NullHooks):
    """Hooks that record starts and finishes, with optional cancellation and sub-flows."""

    def __init__(self, subflow: Callable[[str, Mapping[str, Any], int], Mapping[str, Any]] | None = None):
        self.started: list[tuple[str, int, datetime]] = []
        self.finished: list[engine.StepOutcome] = []
        self.cancel = threading.Event()
        self.subflow = subflow

    def step_started(self, step: engine.StepSpec, attempt: int, started_at: datetime) -> None:
        self.started.append((step.name, attempt, started_at))

    def step_finished(self, outcome: engine.StepOutcome) -> None:
        self.finished.append(outcome)

    def is_cancelled(self) -> bool:
        return self.cancel.is_set()

    def run_subflow(
        self, flow: str, inputs: Mapping[str, Any], depth: int, stop: threading.Event
    ) -> Mapping[str, Any]:
        assert self.subflow is not None
        return self.subflow(flow, inputs, depth)


def outcomes(result: engine.RunResult) -> dict[str, engine.StepOutcome]:
    """Step outcomes by name."""
    return {outcome.name: outcome for outcome in result.steps}


def test_a_flow_runs_in_dependency_order_and_resolves_outputs():
    document = {
        "name": "greet",
        "inputs": {"name": {"type": "string", "default": "world"}, "n": {"type": "integer", "default": 2}},
        "steps": [
            {
                "name": "shout",
                "type": "python",
                "function": "upper",
                "args": {"text": "${steps.hello.output}"},
            },
            {"name": "hello", "type": "template", "template": "Hello, ${inputs.name}!"},
            call("double", "add", args={"a": "${inputs.n}", "b": "${inputs.n}"}),
        ],
        "outputs": {
            "greeting": "${steps.shout.output}",
            "four": "${steps.double.output}",
            "n": "${inputs.n}",
        },
    }
    hooks = RecordingHooks()
    result = run_flow(document, engine.EngineConfig(), hooks, name="ada")
    assert result == engine.RunResult("succeeded", {"greeting": "HELLO, ADA!", "four": 4, "n": 2}, None, result.steps)
    steps = outcomes(result)
    assert steps["hello"].finished_at <= steps["shout"].started_at
    assert all(o.status == "succeeded" and o.attempts == 1 and o.error is None for o in result.steps)
    assert all(o.started_at.tzinfo is not None and o.started_at.utcoffset().total_seconds() == 0 for o in result.steps)
    assert sorted(o.name for o in hooks.finished) == ["double", "hello", "shout"]


def test_independent_branches_run_concurrently():
    barrier = threading.Barrier(2, timeout=WAIT)

    def meet(label: str) -> str:
        barrier.wait()  # times out (and fails the step) unless both branches run at the same time
        return label

    document = {
        "name": "branches",
        "steps": [call("left", "meet", args={"label": "l"}), call("right", "meet", args={"label": "r"})],
        "outputs": {"both": ["${steps.left.output}", "${steps.right.output}"]},
    }
    result = run_flow(document, config_with(meet=meet))
    assert result.status == "succeeded", result.error
    assert result.outputs == {"both": ["l", "r"]}
    left, right = outcomes(result)["left"], outcomes(result)["right"]
    assert left.started_at < right.finished_at
    assert right.started_at < left.finished_at


def test_a_failing_step_fails_the_run_waits_for_running_steps_and_starts_nothing_new():
    boom_finished = threading.Event()

    def wait_for_boom() -> str:
        assert boom_finished.wait(WAIT)
        return "side done"

    class Hooks(RecordingHooks):
        def step_finished(self, outcome: engine.StepOutcome) -> None:
            super().step_finished(outcome)
            if outcome.name == "boom":
                boom_finished.set()

    document = {
        "name": "failing",
        "steps": [
            {"name": "ok", "type": "template", "template": "fine"},
            {"name": "boom", "type": "fail", "message": "kaput", "after": ["ok"]},
            call("side", "wait_for_boom"),
            {"name": "later", "type": "template", "template": "${steps.boom.output}"},
            {"name": "after_ok", "type": "template", "template": "x", "after": ["side"]},
        ],
        "outputs": {"x": "${steps.later.output}"},
    }
    result = run_flow(document, config_with(wait_for_boom=wait_for_boom), Hooks())
    assert (result.status, result.error, result.outputs) == ("failed", 'step "boom": kaput', {})
    steps = outcomes(result)
    assert set(steps) == {"ok", "boom", "side"}
    assert steps["ok"].status == "succeeded"
    assert steps["side"].output == "side done"
    assert steps["boom"].status == "failed"
    assert steps["boom"].error == 'step "boom": kaput'


def test_python_exceptions_fail_the_step_with_their_message():
    def explode() -> None:
        raise ValueError("bad value")

    result = run_flow({"name": "p", "steps": [call("p", "explode")]}, config_with(explode=explode))
    assert (result.status, result.error) == ("failed", 'step "p": ValueError: bad value')


def test_run_time_field_checks_fail_the_step():
    document = {
        "name": "p",
        "inputs": {"wait": {"type": "string", "default": "soon"}},
        "steps": [{"name": "nap", "type": "sleep", "seconds": "${inputs.wait}"}],
    }
    result = run_flow(document, engine.EngineConfig())
    assert result.error == 'step "nap": "seconds" must be a number'


def test_unresolvable_output_paths_fail_the_run():
    document = {
        "name": "p",
        "steps": [call("e", "echo", args={"value": {"a": 1}})],
        "outputs": {"b": "${steps.e.output.b}"},
    }
    result = run_flow(document, engine.EngineConfig())
    assert result.status == "failed"
    assert result.error == 'outputs: cannot resolve ${steps.e.output.b}: no "b" in object'


def test_retries_count_attempts():
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"failure {len(calls)}")
        return "third time lucky"

    hooks = RecordingHooks()
    result = run_flow({"name": "r", "steps": [call("flaky", "flaky", retries=2)]}, config_with(flaky=flaky), hooks)
    flaky_outcome = outcomes(result)["flaky"]
    assert (flaky_outcome.status, flaky_outcome.attempts, flaky_outcome.output) == (
        "succeeded",
        3,
        "third time lucky",
    )
    assert [attempt for _, attempt, _ in hooks.started] == [1, 2, 3]
    assert flaky_outcome.started_at == hooks.started[0][2]


def test_retries_run_out():
    def always() -> None:
        raise RuntimeError("nope")

    result = run_flow({"name": "r", "steps": [call("a", "always", retries=1)]}, config_with(always=always))
    assert outcomes(result)["a"].attempts == 2
    assert result.error == 'step "a": RuntimeError: nope'


def test_step_timeout_fails_promptly_and_releases_the_pool():
    release = threading.Event()
    attempts: list[int] = []

    def stuck_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            release.wait(WAIT)  # overruns the 0.2s timeout; abandoned by the engine
        return "second attempt"

    config = engine.EngineConfig(python_functions={"stuck_once": stuck_once}, max_workers=1)
    document = {
        "name": "t",
        "steps": [
            call("slow", "stuck_once", timeout=0.2, retries=1),
            {"name": "other", "type": "template", "template": "x"},
        ],
    }
    began = time.monotonic()
    try:
        result = run_flow(document, config)
    finally:
        release.set()
    assert time.monotonic() - began < WAIT / 2
    assert result.status == "succeeded"
    assert outcomes(result)["slow"].attempts == 2
    assert outcomes(result)["other"].status == "succeeded"


def test_step_timeout_message():
    release = threading.Event()
    config = engine.EngineConfig(python_functions={"block": lambda: release.wait(WAIT)}, default_step_timeout=0.2)
    try:
        result = run_flow({"name": "t", "steps": [call("slow", "block")]}, config)
    finally:
        release.set()
    assert (result.status, result.error) == ("failed", 'step "slow": timed out after 0.2s')


def test_sleep_wakes_early_on_timeout():
    document = {"name": "t", "steps": [{"name": "nap", "type": "sleep", "seconds": 30, "timeout": 0.1}]}
    began = time.monotonic()
    result = run_flow(document, engine.EngineConfig())
    assert result.error == 'step "nap": timed out after 0.1s'
    deadline = time.monotonic() + WAIT
    while any(thread.name == "flowexec-nap" for thread in threading.enumerate()) and time.monotonic() < deadline:
        threading.Event().wait(0.01)  # bounded poll for the abandoned thread to exit
    assert not any(thread.name == "flowexec-nap" for thread in threading.enumerate())
    assert time.monotonic() - began < WAIT


def test_cancellation_stops_later_steps():
    hooks = RecordingHooks()

    def cancel() -> str:
        hooks.cancel.set()
        return "cancelled the run"

    document = {
        "name": "c",
        "steps": [
            call("first", "cancel"),
            {"name": "second", "type": "template", "template": "x", "after": ["first"]},
        ],
    }
    result = run_flow(document, config_with(cancel=cancel), hooks)
    assert (result.status, result.error, result.outputs) == ("cancelled", "cancelled", {})
    assert [outcome.name for outcome in result.steps] == ["first"]
    assert [name for name, _, _ in hooks.started] == ["first"]


def test_cancellation_wakes_a_sleeping_step():
    class Hooks(RecordingHooks):
        def step_started(self, step: engine.StepSpec, attempt: int, started_at: datetime) -> None:
            super().step_started(step, attempt, started_at)
            self.cancel.set()

    began = time.monotonic()
    result = run_flow(
        {"name": "c", "steps": [{"name": "nap", "type": "sleep", "seconds": 30}]},
        engine.EngineConfig(),
        Hooks(),
    )
    assert time.monotonic() - began < WAIT
    assert result.status == "cancelled"
    assert outcomes(result)["nap"].status == "cancelled"


def test_cancelled_before_start_runs_nothing():
    hooks = RecordingHooks()
    hooks.cancel.set()
    result = run_flow({"name": "c", "steps": [{"name": "a", "type": "fail"}]}, engine.EngineConfig(), hooks)
    assert (result.status, result.steps, hooks.started) == ("cancelled", (), [])


def test_pool_size_bounds_concurrent_steps():
    lock = threading.Lock()
    entered = threading.Condition(lock)
    release = threading.Event()
    state = {"active": 0, "peak": 0, "started": 0}

    def hold() -> None:
        with entered:
            state["active"] += 1
            state["started"] += 1
            state["peak"] = max(state["peak"], state["active"])
            entered.notify_all()
        assert release.wait(WAIT)
        with lock:
            state["active"] -= 1

    config = engine.EngineConfig(python_functions={"hold": hold}, max_workers=2)
    definition = engine.parse({"name": "p", "steps": [call(f"s{index}", "hold") for index in range(5)]}, config=config)
    results: list[engine.RunResult] = []
    runner = threading.Thread(target=lambda: results.append(engine.run(definition, {}, config=config)))
    runner.start()
    try:
        with entered:
            assert entered.wait_for(lambda: state["started"] == 2, timeout=WAIT)
            # A third step would start within milliseconds if the pool were not bounded.
            assert not entered.wait_for(lambda: state["started"] > 2, timeout=0.3)
    finally:
        release.set()
        runner.join(WAIT)
    assert results[0].status == "succeeded"
    assert len(results[0].steps) == 5
    assert state["peak"] == 2


def test_sub_flow_runs_through_hooks_one_level_deeper():
    calls: list[tuple[str, Mapping[str, Any], int]] = []

    def subflow(flow: str, inputs: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        calls.append((flow, inputs, depth))
        return {"greeting": f"hi {inputs['who']}"}

    document = {
        "name": "outer",
        "steps": [{"name": "sub", "type": "flow", "flow": "greet", "inputs": {"who": "${inputs.who}"}}],
        "outputs": {"said": "${steps.sub.output.greeting}"},
        "inputs": {"who": {"type": "string"}},
    }
    config = engine.EngineConfig()
    definition = engine.parse(document)
    result = engine.run(definition, {"who": "ada"}, config=config, hooks=RecordingHooks(subflow), depth=2)
    assert result.outputs == {"said": "hi ada"}
    assert calls == [("greet", {"who": "ada"}, 3)]


def test_sub_flow_depth_limit():
    document = {"name": "outer", "steps": [{"name": "sub", "type": "flow", "flow": "again"}]}
    definition = engine.parse(document)
    hooks = RecordingHooks(lambda flow, inputs, depth: pytest.fail("must not be called"))
    result = engine.run(definition, {}, config=engine.EngineConfig(max_depth=2), hooks=hooks, depth=2)
    assert result.error == 'step "sub": sub-flow "again" would nest 3 levels deep (max 2)'


def test_sub_flow_errors_fail_the_step():
    def missing(flow: str, inputs: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        raise engine.FlowNotFound(flow)

    definition = engine.parse({"name": "outer", "steps": [{"name": "sub", "type": "flow", "flow": "ghost"}]})
    result = engine.run(definition, {}, config=engine.EngineConfig(), hooks=RecordingHooks(missing))
    assert result.error == 'step "sub": flow "ghost" not found'
    without_hooks = engine.run(definition, {}, config=engine.EngineConfig())
    assert without_hooks.error.startswith('step "sub": cannot run sub-flow "ghost"')


def test_pure_steps_run_inline_without_a_pool_or_step_started(monkeypatch):
    threads: list[str] = []

    @engine.functions.pure
    def where(text: str) -> str:
        threads.append(threading.current_thread().name)
        return text

    class NoPool:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("an all-inline run must not create a thread pool")

    monkeypatch.setattr(scheduler, "ThreadPoolExecutor", NoPool)
    document = {
        "name": "inline",
        "steps": [
            {"name": "a", "type": "template", "template": "x"},
            call("b", "upper", args={"text": "${steps.a.output}"}),
            call("c", "where", args={"text": "${steps.b.output}"}),
        ],
        "outputs": {"c": "${steps.c.output}"},
    }
    hooks = RecordingHooks()
    result = run_flow(document, config_with(where=where), hooks)
    assert (result.status, result.outputs) == ("succeeded", {"c": "X"})
    assert threads == [threading.current_thread().name]
    assert hooks.started == []
    assert [outcome.name for outcome in hooks.finished] == ["a", "b", "c"]


def test_retry_delays_back_off_exponentially_with_full_jitter_and_a_cap(monkeypatch):
    ceilings: list[tuple[float, float]] = []
    monkeypatch.setattr(scheduler.random, "uniform", lambda low, high: ceilings.append((low, high)) or 0.0)

    def always() -> None:
        raise RuntimeError("nope")

    step = call("a", "always", retries=3, retry_delay=100, retry_backoff=3)
    result = run_flow({"name": "r", "steps": [step]}, config_with(always=always))
    assert outcomes(result)["a"].attempts == 4
    assert ceilings == [(0, 100), (0, 300), (0, 300)]


def test_cancel_interrupts_a_retry_wait(monkeypatch):
    monkeypatch.setattr(scheduler.random, "uniform", lambda low, high: high)
    hooks = RecordingHooks()

    def fail_and_cancel() -> None:
        hooks.cancel.set()
        raise RuntimeError("nope")

    began = time.monotonic()
    step = call("a", "fail_and_cancel", retries=2, retry_delay=60)
    result = run_flow({"name": "r", "steps": [step]}, config_with(fail_and_cancel=fail_and_cancel), hooks)
    assert time.monotonic() - began < 1.5
    assert result.status == "cancelled"
    assert outcomes(result)["a"].attempts == 1


def test_a_step_that_finishes_after_the_cancel_is_recorded_cancelled_not_succeeded():
    noticed = threading.Event()

    class Hooks(RecordingHooks):
        def is_cancelled(self) -> bool:
            if self.cancel.is_set():
                noticed.set()
                return True
            return False

    hooks = Hooks()

    def finish_late() -> str:
        hooks.cancel.set()
        assert noticed.wait(WAIT)  # the engine has seen the cancel; now the work completes anyway
        return "done"

    document = {"name": "c", "steps": [call("late", "finish_late")]}
    result = run_flow(document, config_with(finish_late=finish_late), hooks)
    assert result.status == "cancelled"
    assert [(o.name, o.status, o.output) for o in hooks.finished] == [("late", "cancelled", None)]


SECRET = "s3cr3t-Pa55"


def test_secret_values_are_masked_in_step_outcomes_and_the_result_but_usable_inside():
    received: list[str] = []

    def use(value: str) -> str:
        received.append(value)
        return f"used {value}"

    document = {
        "name": "s",
        "inputs": {"password": {"type": "string"}, "key": {"type": "string", "secret": True}},
        "steps": [
            {"name": "t", "type": "template", "template": "pw=${inputs.password} key=${inputs.key}"},
            call("u", "use", args={"value": "${inputs.key}"}),
            call("url", "echo", args={"value": "https://api.example/x?key=${inputs.key}&n=1"}),
        ],
        "outputs": {"t": "${steps.t.output}", "raw": "${inputs.key}", "u": "${steps.u.output}"},
    }
    hooks = RecordingHooks()
    result = run_flow(document, config_with(use=use), hooks, password=SECRET, key="k-" + SECRET)
    assert received == ["k-" + SECRET]
    assert result.outputs == {"t": "pw=[REDACTED] key=[REDACTED]", "raw": "[REDACTED]", "u": "used [REDACTED]"}
    assert outcomes(result)["url"].output == "https://api.example/x?key=[REDACTED]&n=1"
    assert SECRET not in repr(result) and SECRET not in repr(hooks.finished)


def test_secret_values_are_masked_in_errors_and_extra_secrets_are_masked_too():
    document = {
        "name": "s",
        "inputs": {"note": {"type": "string"}},
        "steps": [{"name": "boom", "type": "fail", "message": "could not use ${inputs.note}"}],
    }
    definition = engine.parse(document)
    result = engine.run(definition, {"note": SECRET}, config=engine.EngineConfig(), secrets=[SECRET])
    assert result.error == 'step "boom": could not use [REDACTED]'
    assert result.steps[0].error == 'step "boom": could not use [REDACTED]'


def test_log_lines_from_steps_are_masked(caplog):
    caplog.handler.addFilter(SecretsLogFilter())

    def chatty(value: str) -> str:
        logging.getLogger("tests.chatty").warning("calling upstream with %s", value)
        return "ok"

    document = {
        "name": "s",
        "inputs": {"api_token": {"type": "string"}},
        "steps": [call("c", "chatty", args={"value": "${inputs.api_token}"})],
    }
    assert run_flow(document, config_with(chatty=chatty), api_token=SECRET).status == "succeeded"
    assert "calling upstream with [REDACTED]" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_a_flow_step_hands_run_subflow_a_stop_that_is_set_on_timeout_and_cancel(how):
    seen: list[bool] = []

    class Hooks(RecordingHooks):
        def step_started(self, step: engine.StepSpec, attempt: int, started_at: datetime) -> None:
            if how == "cancel":
                self.cancel.set()

        def run_subflow(
            self, flow: str, inputs: Mapping[str, Any], depth: int, stop: threading.Event
        ) -> Mapping[str, Any]:
            seen.append(stop.wait(WAIT))  # a child run would cancel itself here
            raise engine.ExecutionCancelled()

    step = {"name": "sub", "type": "flow", "flow": "child", "timeout": 0.2 if how == "timeout" else 30}
    began = time.monotonic()
    result = run_flow({"name": "parent", "steps": [step]}, engine.EngineConfig(), Hooks())
    assert time.monotonic() - began < 1.5
    deadline = time.monotonic() + WAIT
    while not seen and time.monotonic() < deadline:
        threading.Event().wait(0.01)  # bounded poll: the abandoned body thread reports what it saw
    assert seen == [True]
    assert result.status == ("failed" if how == "timeout" else "cancelled")

"""The flows the bench runs: two template steps (the reference), and chains and fan-outs of N steps."""

from __future__ import annotations

from typing import Any

TWO = "bench-two"
INPUTS = {"name": "bench"}
STEP_COUNTS = (2, 10, 50)


def two_templates() -> dict[str, Any]:
    """Two chained `template` steps: the trivial flow every comparison uses."""
    return {
        "name": TWO,
        "description": "bench: two chained template steps",
        "inputs": {"name": {"type": "string", "default": "world"}},
        "steps": [
            {"name": "hello", "type": "template", "template": "Hello, ${inputs.name}!"},
            {"name": "exclaim", "type": "template", "template": "${steps.hello.output}!"},
        ],
        "outputs": {"greeting": "${steps.exclaim.output}"},
    }


def chain(steps: int) -> dict[str, Any]:
    """`steps` template steps, each depending on the one before."""
    body = [{"name": "s1", "type": "template", "template": "${inputs.name}"}]
    body += [{"name": f"s{i}", "type": "template", "template": f"${{steps.s{i - 1}.output}}"}
             for i in range(2, steps + 1)]
    return {"name": chain_name(steps), "description": f"bench: a chain of {steps} template steps",
            "inputs": {"name": {"type": "string", "default": "world"}},
            "steps": body, "outputs": {"last": f"${{steps.s{steps}.output}}"}}


def fan_out(steps: int) -> dict[str, Any]:
    """One root template step and `steps - 1` independent steps that all depend on it."""
    body = [{"name": "root", "type": "template", "template": "${inputs.name}"}]
    body += [{"name": f"b{i}", "type": "template", "template": f"${{steps.root.output}} {i}"}
             for i in range(1, steps)]
    return {"name": fan_out_name(steps), "description": f"bench: one step fanning out to {steps - 1}",
            "inputs": {"name": {"type": "string", "default": "world"}},
            "steps": body, "outputs": {"first": "${steps.b1.output}"}}


def chain_name(steps: int) -> str:
    return f"bench-chain-{steps}"


def fan_out_name(steps: int) -> str:
    return f"bench-fanout-{steps}"


def all_flows() -> list[dict[str, Any]]:
    return [two_templates(), *(chain(n) for n in STEP_COUNTS), *(fan_out(n) for n in STEP_COUNTS)]

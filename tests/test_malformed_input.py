"""Hundreds of malformed trace headers and bodies: never a 5xx, never an HTML page, nothing lost."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20261125
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def mutations(rng: random.Random, valid: str, count: int) -> list[str]:
    """Variants of a valid header: truncated, extended, characters swapped or inserted, junk."""
    alphabet = string.printable + "\u00e9\u2603\x00\x7f"
    out = []
    for _ in range(count):
        text = list(valid)
        for _ in range(rng.randint(1, 4)):
            where = rng.randrange(len(text) + 1)
            action = rng.choice(["drop", "insert", "replace", "truncate", "repeat"])
            if action == "drop" and text:
                del text[min(where, len(text) - 1)]
            elif action == "insert":
                text.insert(where, rng.choice(alphabet))
            elif action == "replace" and text:
                text[min(where, len(text) - 1)] = rng.choice(alphabet)
            elif action == "truncate":
                text = text[:where]
            else:
                text = [*text, ",", *text]
        out.append("".join(text))
    return out


def header_cases() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    traceparents = mutations(rng, f"00-{TRACE_ID}-{SPAN_ID}-01", 120)
    tracestates = mutations(rng, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,a@b=c", 60)
    baggages = mutations(rng, "request_id=abc,client=cli;prop=1,other=%20x", 60)
    extremes = ["", " ", "-", "00", "x" * 10_000, "00-" + "f" * 4096, ",,,,", "=;=;="]
    cases = [{"HTTP_TRACEPARENT": value, "HTTP_TRACESTATE": "a=b"} for value in traceparents + extremes]
    cases += [{"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{SPAN_ID}-01", "HTTP_TRACESTATE": v} for v in tracestates]
    cases += [{"HTTP_BAGGAGE": value} for value in baggages + extremes]
    cases += [{"HTTP_X_REQUEST_ID": value} for value in mutations(rng, "req-123", 20) + extremes]
    return [{k: v.replace("\x00", "") for k, v in case.items()} for case in cases]  # WSGI cannot carry NUL


def body_cases() -> list[Any]:
    rng = random.Random(SEED)
    valid = json.dumps({"flow": "hello", "inputs": {"name": "x"}, "wait": True})
    texts: list[Any] = mutations(rng, valid, 80)
    texts += [
        "",
        "null",
        "[]",
        "42",
        '"flow"',
        "{}",
        '{"flow": null}',
        '{"flow": ["hello"]}',
        '{"flow": "hello", "inputs": []}',
        '{"flow": "hello", "inputs": {"name": {"deep": [1, 2]}}}',
        '{"flow": "hello", "wait": "sometimes"}',
        '{"flow": "../../etc/passwd"}',
        '{"flow": "' + "a" * 5000 + '"}',
        '{"flow": "hello", "inputs": {"__class__": 1}}',
        '{"flow": "hello", "client": "root"}',
    ]
    return texts


@pytest.fixture
def hello(make_flow: Any) -> Any:
    return make_flow(
        name="hello",
        inputs={"name": {"type": "string", "default": "w"}},
        steps=[{"name": "hi", "type": "template", "template": "hi ${inputs.name}"}],
        outputs={"said": "${steps.hi.output}"},
    )


def test_malformed_trace_headers_never_fail_a_request(api_client: APIClient, hello: Any) -> None:
    cases = header_cases()
    assert len(cases) >= 250
    for headers in cases:
        response = api_client.post("/api/executions/", {"flow": "hello"}, format="json", **headers)
        assert response.status_code == 201, (headers, response.content[:300])
        assert response.json()["status"] == "succeeded"
    assert Execution.objects.filter(status=Execution.Status.SUCCEEDED).count() == len(cases)


def test_malformed_bodies_get_a_json_4xx_or_run(api_client: APIClient, hello: Any) -> None:
    for body in body_cases():
        response = api_client.post("/api/executions/", body, content_type="application/json")
        assert response.status_code < 500, (body[:200], response.content[:300])
        assert response["Content-Type"].startswith("application/json"), body[:200]
        if response.status_code >= 400:
            assert response.json(), body[:200]
    assert not Execution.objects.exclude(status__in=[Execution.Status.SUCCEEDED]).exists()


def test_malformed_flow_definitions_get_a_400_naming_a_problem(api_client: APIClient) -> None:
    rng = random.Random(SEED)
    valid = json.dumps(
        {
            "name": "f",
            "steps": [{"name": "a", "type": "template", "template": "${inputs.x}"}],
            "inputs": {"x": {"type": "string"}},
        }
    )
    for body in mutations(rng, valid, 120):
        response = api_client.post("/api/flows/", body, content_type="application/json")
        assert response.status_code in {200, 201, 400}, (body, response.content[:300])
        if response.status_code == 400:
            detail = response.json()
            assert detail.get("problems") or detail.get("detail") or detail, body

"""Hundreds of malformed trace headers and bodies: never a 5xx, never an HTML page, nothing lost."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.hardening]

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
    traceparents = mutations(rng, f"00-{TRACE_ID}-{SPAN_ID}-01", 150)
    tracestates = mutations(rng, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,a@b=c", 80)
    baggages = mutations(rng, "request_id=abc,client=cli;prop=1,other=%20x", 70)
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


@pytest.fixture
def unthrottled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of requests a second are the point here, not the per-user throttle (DRF reads rates at import)."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "user": None})


@pytest.mark.usefixtures("unthrottled")
def test_malformed_trace_headers_never_fail_a_request(api_client: APIClient, hello: Any) -> None:
    cases = header_cases()
    w3c = [case for case in cases if "HTTP_X_REQUEST_ID" not in case]
    assert len(w3c) >= 300  # the count the README's reliability section gives
    for headers in cases:
        response = api_client.post("/api/executions/", {"flow": "hello"}, format="json", **headers)
        assert response.status_code == 201, (headers, response.content[:300])
        assert response.json()["status"] == "succeeded"
    assert Execution.objects.filter(status=Execution.Status.SUCCEEDED).count() == len(cases)


@pytest.mark.usefixtures("unthrottled")
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


# --- bodies that must not exhaust the host, and inputs that must not poison reads ------------------

ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}]" for a, b in zip("abcdefghi", "bcdefghij", strict=True)]
    + ["name: bomb", "steps: []"]
)


def _timed(call: Any) -> tuple[Any, float]:
    import time

    started = time.monotonic()
    return call(), time.monotonic() - started


def test_a_yaml_alias_bomb_is_refused_at_once(api_client: APIClient) -> None:
    response, seconds = _timed(lambda: api_client.post("/api/flows/", ALIAS_BOMB, content_type="application/yaml"))
    assert response.status_code == 400 and "alias" in json.dumps(response.json()), response.content[:300]
    assert seconds < 1


def test_a_50_mb_yaml_body_gets_413_at_once(api_client: APIClient) -> None:
    body = "name: big\nsteps: []\ndescription: " + "x" * (50 * 1024 * 1024) + "\n"
    response, seconds = _timed(lambda: api_client.post("/api/flows/", body, content_type="application/yaml"))
    assert response.status_code == 413 and response.json()["detail"]
    assert seconds < 1


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        pytest.param("/api/flows/", "application/json", "[" * 10_000 + "]" * 10_000, id="flow-json"),
        pytest.param("/api/flows/", "application/yaml", "a: " + "[" * 1_000 + "]" * 1_000, id="flow-yaml"),
        pytest.param(
            "/api/executions/", "application/json",
            '{"flow": "hello", "inputs": {"x": ' + "[" * 10_000 + "]" * 10_000 + "}}", id="execution-json",
        ),
        pytest.param(
            "/api/executions/", "application/json",
            '{"flow": "hello", "inputs": {"x": ' + "[" * 150 + "]" * 150 + "}}", id="execution-over-depth-limit",
        ),
        pytest.param("/v1/traces", "application/json", '{"resourceSpans": ' + "[" * 10_000 + "]" * 10_000 + "}",
                     id="otlp-json"),
    ],
)  # fmt: skip
def test_deep_nesting_is_a_400(api_client: APIClient, hello: Any, path: str, content_type: str, body: str) -> None:
    response = api_client.post(path, body, content_type=content_type)
    assert response.status_code == 400, response.content[:300]
    assert not Execution.objects.exists()


@pytest.mark.parametrize("body", ["- null", "null", "123", "[]", "", "# only a comment\n", '"text"'])
@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_a_top_level_body_that_is_not_an_object_is_a_400(
    api_client: APIClient, hello: Any, body: str, content_type: str
) -> None:
    flows = api_client.post("/api/flows/", body, content_type=content_type)
    assert flows.status_code == 400 and flows.json(), (body, flows.content[:300])
    put = api_client.put("/api/flows/hello/", body, content_type=content_type)
    assert put.status_code == 400 and put.json(), (body, put.content[:300])
    if content_type == "application/json":
        executions = api_client.post("/api/executions/", body, content_type=content_type)
        assert executions.status_code == 400 and executions.json(), (body, executions.content[:300])


@pytest.mark.parametrize("value", ["\udfff", "a\ud800b", "nul\x00here"], ids=["lone-low", "lone-high", "nul"])
def test_unstorable_text_in_inputs_is_a_400_and_stores_nothing(api_client: APIClient, hello: Any, value: str) -> None:
    body = json.dumps({"flow": "hello", "inputs": {"name": value}})
    response = api_client.post("/api/executions/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"], response.content[:300]
    assert not Execution.objects.exists()
    flow = json.dumps({"name": "f", "description": value, "steps": []})
    assert api_client.post("/api/flows/", flow, content_type="application/json").status_code == 400
    assert api_client.get("/api/executions/").status_code == 200


def test_a_stored_row_with_a_lone_surrogate_still_renders(api_client: APIClient, hello: Any) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL cannot store a lone surrogate at all")
    Execution.objects.create(flow=hello, flow_name="hello", flow_version=1, inputs={"name": "\udfff"})
    listed = api_client.get("/api/executions/")
    assert listed.status_code == 200
    assert listed.json()["results"][0]["inputs"] == {"name": "\udfff"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/flows/h\u00e9llo/",
        "/api/flows/\U0001d11e/",
        "/api/executions/\U0001d11e/",
        "/api/executions/%F0%9D%84%9E/cancel/",
        "/api/traces/\u00e9\u00e9/",
        "/api/traces/%ED%BF%BF/",
    ],
)
def test_non_ascii_path_segments_are_a_4xx(api_client: APIClient, path: str) -> None:
    response = api_client.get(path)
    assert 400 <= response.status_code < 500 and response.json(), response.content[:300]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/flows/hello.json"),
        ("delete", "/api/flows/hello.json"),
        ("post", "/api/flows.json"),
        ("post", "/api/executions.json"),
        ("post", "/api/executions/00000000-0000-0000-0000-000000000000/cancel.json"),
    ],
)
def test_there_are_no_format_suffix_routes(api_client: APIClient, hello: Any, method: str, path: str) -> None:
    response = getattr(api_client, method)(path, {"flow": "hello"}, format="json")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_a_version_that_is_not_a_number_is_a_400(api_client: APIClient, hello: Any) -> None:
    for version in ["abc", "0", "-1", "1.5", "99999999999999999999"]:
        assert api_client.get(f"/api/flows/hello/?version={version}").status_code == 400, version
        assert api_client.delete(f"/api/flows/hello/?version={version}").status_code == 400, version
    assert api_client.get("/api/flows/hello/").status_code == 200


def test_deleting_one_version_keeps_the_others_and_numbers_are_never_reused(api_client: APIClient) -> None:
    first = {"name": "v", "steps": [{"name": "a", "type": "template", "template": "one"}]}
    second = {"name": "v", "steps": [{"name": "a", "type": "template", "template": "two"}]}
    assert api_client.post("/api/flows/", first, format="json").json()["version"] == 1
    assert api_client.post("/api/flows/", second, format="json").json()["version"] == 2
    assert api_client.delete("/api/flows/v/?version=2").status_code == 204
    assert api_client.get("/api/flows/v/").json()["version"] == 1
    assert api_client.get("/api/flows/v/?version=2").status_code == 404
    assert api_client.delete("/api/flows/v/?version=2").status_code == 404
    assert api_client.post("/api/flows/", second, format="json").json()["version"] == 3
    assert api_client.delete("/api/flows/v/").status_code == 204
    assert api_client.get("/api/flows/v/").status_code == 404
    assert api_client.post("/api/flows/", first, format="json").json()["version"] == 4


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/flows/\u00e9t\u00e9/"), ("post", "/api/flows"), ("delete", "/api/flows/.exe/"), ("get", "/api/no")],
)
def test_unknown_api_paths_are_a_json_404_even_with_debug_and_a_session(
    api_client: APIClient, settings: Any, method: str, path: str
) -> None:
    settings.DEBUG = True  # Django's DEBUG 404 page is HTML, and a POST without a slash would raise
    api_client.cookies["sessionid"] = "anything"  # a cookie makes CSRF checks apply to non-DRF views
    response = getattr(api_client, method)(path)
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}

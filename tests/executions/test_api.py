"""The REST API: validation, auth, sync/async runs, filters, cancel, JSON errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.engine.functions import pure
from executions.models import Execution
from tests.live import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {
    "name": "hello",
    "inputs": {"name": {"type": "string", "default": "world"}, "count": {"type": "integer", "default": 1}},
    "steps": [
        {"name": "hello", "type": "template", "template": "Hello, ${inputs.name}!"},
        {"name": "shout", "type": "python", "function": "upper", "args": {"text": "${steps.hello.output}"}},
    ],
    "outputs": {"greeting": "${steps.shout.output}"},
}


def flow_with(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "bad", "steps": list(steps), **fields}


INVALID_FLOWS = [
    pytest.param(
        flow_with({"name": "a", "type": "teleport"}), 'step "a": unknown type "teleport"', id="unknown-type"
    ),
    pytest.param(
        flow_with(
            {"name": "a", "type": "template", "template": "x"},
            {"name": "a", "type": "template", "template": "y"},
        ),
        'duplicate step name "a"',
        id="duplicate-names",
    ),
    pytest.param(
        flow_with(
            {"name": "shout", "type": "python", "function": "upper", "args": {"text": "${steps.helo.output}"}}
        ),
        'step "shout": unknown step "helo"',
        id="missing-step-ref",
    ),
    pytest.param(
        flow_with({"name": "a", "type": "template", "template": "${inputs.nope}"}),
        'step "a": unknown input "nope"',
        id="missing-input-ref",
    ),
    pytest.param(
        flow_with(
            {"name": "a", "type": "template", "template": "${steps.b.output}"},
            {"name": "b", "type": "template", "template": "${steps.a.output}"},
        ),
        "cycle",
        id="cycle",
    ),
    pytest.param(
        flow_with({"name": "evil", "type": "python", "function": "os.system", "args": {"command": "true"}}),
        'step "evil": unknown function "os.system"',
        id="unknown-function",
    ),
    pytest.param(
        flow_with({"name": "a", "type": "template", "template": "x" * 300_000}),
        "too large",
        id="oversized",
    ),
    pytest.param(
        flow_with({"name": "p", "type": "sleep", "seconds": "soon"}), 'step "p"', id="bad-field-type"
    ),
]


@pytest.mark.parametrize(("definition", "message"), INVALID_FLOWS)
def test_invalid_flow_is_400_naming_the_problem(
    api_client: APIClient, definition: dict, message: str
) -> None:
    response = api_client.post("/api/flows/", definition, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert any(message in problem for problem in body["problems"]), body


def test_all_problems_are_reported_at_once(api_client: APIClient) -> None:
    definition = flow_with(
        {"name": "a", "type": "teleport"}, {"name": "b", "type": "python", "function": "nope"}
    )
    problems = api_client.post("/api/flows/", definition, format="json").json()["problems"]
    assert len(problems) >= 2
    assert any('unknown type "teleport"' in p for p in problems) and any(
        'unknown function "nope"' in p for p in problems
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [({"count": "x"}, 'input "count": expected integer'), ({"name": 5}, 'input "name": expected string')],
)
def test_ill_typed_inputs_are_400(api_client: APIClient, inputs: dict, message: str) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    response = api_client.post("/api/executions/", {"flow": "hello", "inputs": inputs}, format="json")
    assert response.status_code == 400
    assert any(message in p for p in response.json()["problems"]), response.json()
    assert not Execution.objects.exists()


def test_missing_required_input_is_400(api_client: APIClient) -> None:
    definition = {**HELLO, "inputs": {"name": {"type": "string"}}}
    api_client.post("/api/flows/", definition, format="json")
    response = api_client.post("/api/executions/", {"flow": "hello", "inputs": {}}, format="json")
    assert response.status_code == 400
    assert any('input "name"' in p and "required" in p for p in response.json()["problems"])


def test_unknown_flow_is_404_json(api_client: APIClient) -> None:
    response = api_client.post("/api/executions/", {"flow": "nope"}, format="json")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_sync_execution_returns_finished_execution(api_client: APIClient) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    response = api_client.post(
        "/api/executions/",
        {"flow": "hello", "inputs": {"name": "Ada"}},
        format="json",
        HTTP_X_REQUEST_ID="req-42",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"greeting": "HELLO, ADA!"}
    assert [step["name"] for step in body["steps"]] == ["hello", "shout"]
    assert body["request_id"] == "req-42"
    assert response["X-Request-ID"] == "req-42"
    assert body["links"]["admin"].endswith(f"/admin/executions/execution/{body['id']}/change/")


TWO_TEMPLATES = {
    "name": "two",
    "steps": [
        {"name": "hello", "type": "template", "template": "Hello, ${inputs.name}!"},
        {"name": "exclaim", "type": "template", "template": "${steps.hello.output}!"},
    ],
    "inputs": {"name": {"type": "string", "default": "world"}},
    "outputs": {"greeting": "${steps.exclaim.output}"},
}


def _count_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement any thread sends from now on (the request's and the pool's)."""
    from django.db.backends.utils import CursorWrapper

    sent: list[str] = []
    execute, executemany = CursorWrapper.execute, CursorWrapper.executemany

    def counted_execute(self: Any, sql: str, params: Any = None) -> Any:
        sent.append(sql)
        return execute(self, sql, params)

    def counted_executemany(self: Any, sql: str, param_list: Any) -> Any:
        sent.append(sql)
        return executemany(self, sql, param_list)

    monkeypatch.setattr(CursorWrapper, "execute", counted_execute)
    monkeypatch.setattr(CursorWrapper, "executemany", counted_executemany)
    return sent


def test_a_sync_execution_of_two_instant_steps_sends_five_statements(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_client.post("/api/flows/", TWO_TEMPLATES, format="json")
    api_client.post("/api/executions/", {"flow": "two"}, format="json")  # warm: content types, first connections
    sent = _count_statements(monkeypatch)
    response = api_client.post("/api/executions/", {"flow": "two"}, format="json")
    assert response.status_code == 201 and response.json()["outputs"] == {"greeting": "Hello, world!!"}
    # Token, flow, INSERT of the execution already running (its steps are instant: it runs in the
    # request's thread), both steps in one INSERT, then the outcome; the response is built from
    # what was written, not read back.
    work = [sql for sql in sent if not sql.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]
    assert len(work) <= 5, "\n".join(sent)
    assert sum(sql.lstrip().upper().startswith("INSERT") for sql in work) == 2


@pytest.mark.parametrize(("steps", "where"), [
    ([{"name": "say", "type": "template", "template": "hi"}], "request"),
    ([{"name": "nap", "type": "sleep", "seconds": 0.01}], "pool"),
])
def test_only_flows_of_instant_steps_run_in_the_request_thread(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch, steps: list[dict[str, Any]], where: str
) -> None:
    import threading

    from executions import services

    threads: list[str] = []
    drive = services._execution_drive

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return drive(*args, **kwargs)

    monkeypatch.setattr(services, "_execution_drive", recorded)
    api_client.post("/api/flows/", {"name": "where", "steps": steps}, format="json")
    response = api_client.post("/api/executions/", {"flow": "where"}, format="json")
    assert response.status_code == 201 and response.json()["status"] == "succeeded"
    if where == "request":
        assert threads == [threading.current_thread().name]
    else:
        assert len(threads) == 1 and threads[0].startswith("flowexec-async")


@pure
def committed_statuses(flow: str) -> list[str]:
    """A pure step function: the statuses of the flow's executions, read from another thread's connection."""
    import threading

    from django.db import connection

    seen: list[str] = []

    def read() -> None:
        try:
            seen.extend(Execution.objects.filter(flow_name=flow).values_list("status", flat=True))
        finally:
            connection.close()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(10)
    return seen


def test_an_instant_run_in_the_request_thread_is_committed_running_before_its_steps(
    api_client: APIClient, settings: Any
) -> None:
    settings.FLOWEXEC_PYTHON_FUNCTIONS = [f"{__name__}.committed_statuses"]
    flow = {"name": "looks", "steps": [{"name": "look", "type": "python", "function": f"{__name__}.committed_statuses",
                                        "args": {"flow": "looks"}}]}
    assert api_client.post("/api/flows/", flow, format="json").status_code == 201
    body = api_client.post("/api/executions/", {"flow": "looks"}, format="json").json()
    assert body["status"] == "succeeded", body
    assert body["steps"][0]["output"] == ["running"]


def test_the_sync_answer_is_what_a_later_read_returns(api_client: APIClient) -> None:
    flow = {
        "name": "mixed",
        "inputs": {"name": {"type": "string", "default": "world"}},
        "steps": [
            {"name": "hello", "type": "template", "template": "Hello, ${inputs.name}!"},
            {"name": "nap", "type": "sleep", "seconds": 0.01, "after": ["hello"]},
            {"name": "shout", "type": "python", "function": "upper", "args": {"text": "${steps.hello.output}"},
             "after": ["nap"]},
            {"name": "numbers", "type": "template", "template": "${inputs.name}", "after": ["hello"]},
        ],
        "outputs": {"greeting": "${steps.shout.output}", "list": ["${steps.numbers.output}", 1, {"2": None}]},
    }
    api_client.post("/api/flows/", flow, format="json")
    response = api_client.post("/api/executions/", {"flow": "mixed", "inputs": {"name": "Ada"}}, format="json")
    assert response.status_code == 201, response.content
    answered = response.json()
    assert sorted(step["name"] for step in answered["steps"]) == ["hello", "nap", "numbers", "shout"]
    assert answered == api_client.get(f"/api/executions/{answered['id']}/").json()


def test_the_sync_answer_of_a_failed_execution_is_what_a_later_read_returns(api_client: APIClient) -> None:
    flow = {"name": "failing", "steps": [{"name": "ok", "type": "template", "template": "x"},
                                         {"name": "boom", "type": "fail", "after": ["ok"]}]}
    api_client.post("/api/flows/", flow, format="json")
    answered = api_client.post("/api/executions/", {"flow": "failing"}, format="json").json()
    assert answered["status"] == "failed" and [s["status"] for s in answered["steps"]] == ["succeeded", "failed"]
    assert answered == api_client.get(f"/api/executions/{answered['id']}/").json()


def test_async_execution_is_202_then_succeeds(api_client: APIClient) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    response = api_client.post("/api/executions/", {"flow": "hello", "wait": False}, format="json")
    assert response.status_code == 202
    # The body is the row as read after the hand-over: a trivial flow may have finished already.
    assert response.json()["status"] in {"pending", "running", "succeeded"}
    url = f"/api/executions/{response.json()['id']}/"
    body = wait_until(lambda: _finished(api_client.get(url).json()), timeout=20, message="async execution")
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"greeting": "HELLO, WORLD!"}


def test_fifty_async_executions_submitted_at_once_all_finish(api_client: APIClient) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    ids = [
        api_client.post(
            "/api/executions/", {"flow": "hello", "wait": False, "inputs": {"count": i}}, format="json"
        ).json()["id"]
        for i in range(50)
    ]
    wait_until(
        lambda: Execution.objects.filter(id__in=ids, status=Execution.Status.SUCCEEDED).count() == 50,
        timeout=60,
        interval=0.2,
        message="50 async executions",
    )
    assert not Execution.objects.exclude(status=Execution.Status.SUCCEEDED).exists()


def test_unauthenticated_api_is_refused_and_healthz_is_open(db: None) -> None:
    anonymous = APIClient()
    for path in ["/api/executions/", "/api/flows/", "/api/traces/0af7651916cd43dd8448eb211c80319c/"]:
        response = anonymous.get(path)
        assert response.status_code in {401, 403}, path
        assert "detail" in response.json()
    assert anonymous.post("/api/executions/", {"flow": "x"}, format="json").status_code in {401, 403}
    health = anonymous.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_bad_token_is_refused(db: None) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/executions/").status_code == 401


def test_list_filters_and_pagination(api_client: APIClient) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    api_client.post("/api/flows/", {**HELLO, "name": "other"}, format="json")
    for request_id in ["a", "b"]:
        api_client.post("/api/executions/", {"flow": "hello"}, format="json", HTTP_X_REQUEST_ID=request_id)
    api_client.post("/api/executions/", {"flow": "other", "client": "cli"}, format="json")
    page = api_client.get("/api/executions/").json()
    assert set(page) == {"next", "previous", "results"} and len(page["results"]) == 3
    assert [e["flow"] for e in api_client.get("/api/executions/?flow=other").json()["results"]] == ["other"]
    assert api_client.get("/api/executions/?request_id=b").json()["results"][0]["request_id"] == "b"
    assert api_client.get("/api/executions/?status=failed").json()["results"] == []
    assert [e["client"] for e in api_client.get("/api/executions/?client=cli").json()["results"]] == ["cli"]
    trace_id = page["results"][0]["trace_id"]
    if trace_id:
        assert len(api_client.get(f"/api/executions/?trace_id={trace_id}").json()["results"]) == 1
    since = page["results"][1]["created_at"]
    assert len(api_client.get("/api/executions/", {"since": since}).json()["results"]) == 2
    assert api_client.get("/api/executions/?status=bogus").status_code == 400
    assert api_client.get("/api/executions/?since=yesterday").status_code == 400


def test_executions_are_paged_by_cursor_newest_first(api_client: APIClient) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    ids = [api_client.post("/api/executions/", {"flow": "hello"}, format="json").json()["id"] for _ in range(5)]
    seen: list[str] = []
    url = "/api/executions/?page_size=2"
    while url:
        page = api_client.get(url).json()
        assert len(page["results"]) <= 2
        seen += [e["id"] for e in page["results"]]
        url = page["next"]
    assert seen == ids[::-1]
    forged = "cD1ub3QtYS10aW1l"  # p=not-a-time
    assert api_client.get(f"/api/executions/?cursor={forged}").status_code == 404


def test_a_page_read_does_not_count_the_table(api_client: APIClient) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api_client.post("/api/flows/", HELLO, format="json")
    api_client.post("/api/executions/", {"flow": "hello"}, format="json")
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get("/api/executions/").status_code == 200
    assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


def test_flow_put_makes_a_new_version_and_executions_keep_theirs(api_client: APIClient) -> None:
    assert api_client.post("/api/flows/", HELLO, format="json").status_code == 201
    assert api_client.post("/api/flows/", HELLO, format="json").status_code == 200  # unchanged: same version
    first = api_client.post("/api/executions/", {"flow": "hello"}, format="json").json()
    changed = {**HELLO, "description": "now with a description"}
    response = api_client.put("/api/flows/hello/", changed, format="json")
    assert response.status_code == 201 and response.json()["version"] == 2
    second = api_client.post("/api/executions/", {"flow": "hello"}, format="json").json()
    assert (first["flow_version"], second["flow_version"]) == (1, 2)
    assert api_client.get("/api/flows/hello/?version=1").json()["version"] == 1
    assert api_client.put("/api/flows/other/", changed, format="json").status_code == 400


def test_flow_delete_keeps_execution_history(api_client: APIClient) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    execution = api_client.post("/api/executions/", {"flow": "hello"}, format="json").json()
    assert api_client.delete("/api/flows/hello/").status_code == 204
    assert api_client.get("/api/flows/hello/").status_code == 404
    kept = api_client.get(f"/api/executions/{execution['id']}/").json()
    assert (kept["flow"], kept["flow_version"], kept["status"]) == ("hello", 1, "succeeded")


def test_yaml_flow_definition_is_accepted(api_client: APIClient) -> None:
    text = "name: yamlflow\nsteps:\n  - name: hi\n    type: template\n    template: hi\n"
    response = api_client.post("/api/flows/", text, content_type="application/yaml")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "yamlflow"


def test_errors_are_json_never_html(api_client: APIClient) -> None:
    missing = api_client.get("/api/executions/00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("application/json")
    not_allowed = api_client.delete("/api/executions/")
    assert not_allowed.status_code == 405 and "detail" in not_allowed.json()
    nowhere = api_client.get("/no/such/page")
    assert nowhere.status_code == 404 and nowhere.json() == {"detail": "Not found."}
    garbage = api_client.post("/api/executions/", "{not json", content_type="application/json")
    assert garbage.status_code == 400 and "detail" in garbage.json()


def test_oversized_body_is_a_json_error(api_client: APIClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api_client.post("/api/executions/", {"flow": "x", "inputs": {"big": "y" * 4096}}, format="json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")


def test_unexpected_error_is_a_json_500_even_with_debug(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch, settings: Any, spans: Any
) -> None:
    from executions import submission

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("bug in a service")

    settings.DEBUG = True
    monkeypatch.setattr(submission, "execution_submit", broken)  # stands in for any unforeseen bug
    response = api_client.post("/api/executions/", {"flow": "hello"}, format="json")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    server = next(s for s in spans.all() if s.kind.name == "SERVER")
    assert server.status.status_code.name == "ERROR"
    assert any(event.name == "exception" for event in server.events)


def test_an_unexpected_error_never_records_the_requests_input_values(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from executions import submission

    def broken(**kwargs: Any) -> None:
        raise RuntimeError(f"could not use {kwargs['inputs']['api_key']} for {kwargs['inputs']['name']}")

    monkeypatch.setattr(submission, "execution_submit", broken)
    body = {"flow": "hello", "inputs": {"api_key": "sk-live-0123456789", "name": "plain-name"}}
    response = api_client.post("/api/executions/", body, format="json")
    assert response.status_code == 500
    server = next(s for s in spans.all() if s.kind.name == "SERVER")
    [event] = [event for event in server.events if event.name == "exception"]
    recorded = [str(event.attributes), server.status.description or "", caplog.text]
    assert "RuntimeError" in recorded[0] and "RuntimeError" in caplog.text
    for text in recorded:
        assert "sk-live-0123456789" not in text and "plain-name" not in text


def test_cancel_finished_execution_leaves_it_unchanged(api_client: APIClient) -> None:
    api_client.post("/api/flows/", HELLO, format="json")
    execution = api_client.post("/api/executions/", {"flow": "hello"}, format="json").json()
    response = api_client.post(f"/api/executions/{execution['id']}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "succeeded"


def test_schema_and_docs_are_served(api_client: APIClient) -> None:
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/executions/" in json.loads(schema.content)["paths"]
    docs = api_client.get("/api/docs/")
    assert docs.status_code == 200
    assert "cdn" not in docs.content.decode().lower()  # assets ship with the app


def _finished(body: dict[str, Any]) -> dict[str, Any] | None:
    return body if body["status"] in {"succeeded", "failed", "cancelled"} else None


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "execution_created_idx"),
        ({"flow_name": "hello"}, "execution_flow_idx"),
        ({"status": "failed"}, "execution_status_idx"),
        ({"client": "cli"}, "execution_client_idx"),
        ({"request_id": "r"}, "execution_request_id_idx"),
        ({"trace_id": "t"}, "execution_trace_id_idx"),
    ],
)
def test_each_list_filter_with_the_default_order_is_served_by_an_index(
    user: Any, filters: dict[str, str], index: str
) -> None:
    from django.db import connection

    from executions import selectors

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's planner picks a sequential scan for a table this small")
    page = selectors.execution_list(user=user).filter(**filters).order_by("-created_at", "-id")[:51]
    plan = page.explain()
    assert index in plan and "TEMP B-TREE" not in plan, plan


def test_a_users_own_executions_page_is_served_by_an_index(db: None) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from executions import selectors

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's planner picks a sequential scan for a table this small")
    bob = get_user_model().objects.create_user("bob")
    plan = selectors.execution_list(user=bob).order_by("-created_at", "-id")[:51].explain()
    assert "execution_created_by_idx" in plan and "TEMP B-TREE" not in plan, plan


def test_no_execution_index_is_a_prefix_of_another(db: None) -> None:
    """Each index costs every execution's INSERT a page write; one that another index starts with buys nothing."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "executions_execution")
    indexes = {name: tuple(c["columns"]) for name, c in constraints.items()
               if c["index"] and not c["primary_key"] and not c["unique"] and not name.endswith("_like")}
    redundant = [(short, long) for short, columns in indexes.items() for long, others in indexes.items()
                 if short != long and others[: len(columns)] == columns]
    assert not redundant


def test_step_rows_have_no_index_that_their_unique_index_starts_with(db: None) -> None:
    """Each StepRun INSERT writes every index; (execution, name) already serves lookups by execution."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "executions_steprun")
    indexed = [tuple(c["columns"]) for c in constraints.values()
               if (c["index"] or c["unique"]) and not c["primary_key"]]
    assert ("execution_id", "name") in indexed and ("execution_id",) not in indexed, indexed

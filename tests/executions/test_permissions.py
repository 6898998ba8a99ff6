"""Users act only within their rights: another user's data is refused (403/404), the owner's still works."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from executions.models import Execution
from executions.permissions import CLI_GROUP, cli_group
from tests.tracing.test_receiver import node_json
from tracing.models import Span
from tracing.store.rows import span_row
from tracing.store.writer import span_writer, write_rows

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"name": "hello", "steps": [{"name": "hi", "type": "template", "template": "hi"}]}
JSON = "application/json"
SLEEPY = {"name": "sleepy", "steps": [{"name": "nap", "type": "sleep", "seconds": 5}]}


def make_user(name: str, *perms: str, cli: bool = False) -> Any:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(name, password=f"pw-{name}")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    if cli:
        user.groups.add(cli_group())
    return user


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def alice(api_client: APIClient) -> APIClient:
    """The staff user's client, with the hello flow stored."""
    assert api_client.post("/api/flows/", HELLO, format="json").status_code == 201
    return api_client


@pytest.fixture
def bob() -> APIClient:
    return client_for(make_user("bob", cli=True))


@pytest.fixture
def carol() -> APIClient:
    return client_for(make_user("carol", cli=True))


def run(client: APIClient, flow: str = "hello", **body: Any) -> dict[str, Any]:
    """Run a flow as this client; the execution gets a trace id of its own even with tracing disabled."""
    response = client.post("/api/executions/", {"flow": flow, **body}, format="json")
    assert response.status_code in {201, 202}, response.content
    execution = response.json()
    if not execution["trace_id"]:
        execution["trace_id"] = uuid.uuid4().hex
        Execution.objects.filter(pk=execution["id"]).update(trace_id=execution["trace_id"])
    return execution


def add_span(trace_id: str, span_id: str = "a" * 16) -> None:
    write_rows([
        span_row(
            trace_id=trace_id, span_id=span_id, parent_id="", name="execute_flow hello", kind="INTERNAL",
            start_ns=1_700_000_000 * 10**9, end_ns=1_700_000_001 * 10**9, status="UNSET", status_message="",
            attributes={}, events=[], resource={"service.name": "flowexec-service"},
        )
    ])  # fmt: skip


def test_a_user_lists_and_reads_only_their_own_executions(alice: APIClient, bob: APIClient) -> None:
    theirs = run(alice)
    mine = run(bob)
    assert [e["id"] for e in bob.get("/api/executions/").json()["results"]] == [mine["id"]]
    assert bob.get(f"/api/executions/{mine['id']}/").status_code == 200
    refused = bob.get(f"/api/executions/{theirs['id']}/")
    assert refused.status_code == 404 and "detail" in refused.json()
    assert bob.get(f"/api/executions/?trace_id={theirs['trace_id']}").json()["results"] == []
    assert {e["id"] for e in alice.get("/api/executions/").json()["results"]} == {theirs["id"], mine["id"]}


def test_view_execution_permission_sees_all_but_may_not_cancel_them(alice: APIClient) -> None:
    alice.post("/api/flows/", SLEEPY, format="json")
    running = run(alice, "sleepy", wait=False)
    auditor = client_for(make_user("auditor", "executions.view_execution"))
    assert auditor.get(f"/api/executions/{running['id']}/").status_code == 200
    refused = auditor.post(f"/api/executions/{running['id']}/cancel/")
    assert refused.status_code == 403 and "detail" in refused.json()
    assert Execution.objects.get(pk=running["id"]).status != Execution.Status.CANCELLED
    operator = client_for(make_user("operator", "executions.view_execution", "executions.cancel_execution"))
    assert operator.post(f"/api/executions/{running['id']}/cancel/").json()["status"] == "cancelled"


def test_a_user_cancels_their_own_execution_but_not_anothers(alice: APIClient, bob: APIClient) -> None:
    alice.post("/api/flows/", SLEEPY, format="json")
    theirs = run(alice, "sleepy", wait=False)
    mine = run(bob, "sleepy", wait=False)
    assert bob.post(f"/api/executions/{theirs['id']}/cancel/").status_code == 404
    assert Execution.objects.get(pk=theirs["id"]).status != Execution.Status.CANCELLED
    assert bob.post(f"/api/executions/{mine['id']}/cancel/").json()["status"] == "cancelled"
    assert alice.post(f"/api/executions/{theirs['id']}/cancel/").json()["status"] == "cancelled"


def test_flow_writes_need_the_model_permissions_and_reads_do_not(alice: APIClient, bob: APIClient) -> None:
    nobody = client_for(make_user("nobody"))
    assert nobody.get("/api/flows/").status_code == 200
    assert nobody.get("/api/flows/hello/").status_code == 200
    assert run(nobody)["status"] == "succeeded"
    changed = {**HELLO, "description": "hijacked"}
    for response in [
        nobody.post("/api/flows/", {**HELLO, "name": "mine"}, format="json"),
        nobody.put("/api/flows/hello/", changed, format="json"),
        nobody.delete("/api/flows/hello/"),
        bob.delete("/api/flows/hello/"),  # the CLI group manages flows but does not delete them
    ]:
        assert response.status_code == 403 and "detail" in response.json()
    assert alice.get("/api/flows/hello/").json()["version"] == 1
    assert bob.put("/api/flows/hello/", changed, format="json").status_code == 201
    assert bob.post("/api/flows/", {**HELLO, "name": "bobs"}, format="json").status_code == 201
    assert alice.delete("/api/flows/bobs/").status_code == 204


def test_traces_are_visible_to_whoever_may_see_an_execution_in_them(alice: APIClient, bob: APIClient) -> None:
    theirs = run(alice)
    mine = run(bob)
    add_span(theirs["trace_id"])
    add_span(mine["trace_id"])
    assert bob.get(f"/api/traces/{theirs['trace_id']}/").status_code == 404
    assert bob.get(f"/api/traces/{mine['trace_id']}/").status_code == 200
    assert [t["trace_id"] for t in bob.get("/api/traces/").json()["results"]] == [mine["trace_id"]]
    assert alice.get(f"/api/traces/{theirs['trace_id']}/").status_code == 200
    assert len(alice.get("/api/traces/").json()["results"]) == 2


def test_span_ingest_needs_its_permission(alice: APIClient) -> None:
    body = json.dumps(node_json("ab" * 16))
    nobody = client_for(make_user("nobody"))
    refused = nobody.post("/v1/traces", data=body, content_type=JSON)
    assert refused.status_code == 403
    assert span_writer.flush(10) and not Span.objects.exists()


def test_spans_are_stored_with_their_sender_and_not_into_anothers_trace(alice: APIClient, bob: APIClient) -> None:
    theirs = run(alice)
    forged = bob.post("/v1/traces", data=json.dumps(node_json(theirs["trace_id"])), content_type=JSON)
    assert forged.status_code == 403
    assert span_writer.flush(10) and not Span.objects.filter(trace_id=theirs["trace_id"]).exists()
    mine = run(bob)
    for trace_id in [mine["trace_id"], "cd" * 16]:  # their own execution's trace, and a trace of no execution
        response = bob.post("/v1/traces", data=json.dumps(node_json(trace_id)), content_type=JSON)
        assert response.status_code == 200, response.content
    assert span_writer.flush(10)
    assert {span.sender.username for span in Span.objects.all()} == {"bob"}
    assert alice.post("/v1/traces", data=json.dumps(node_json(mine["trace_id"])), content_type=JSON).status_code == 200


def test_schema_and_docs_need_a_token_like_every_api_endpoint(alice: APIClient) -> None:
    anonymous = APIClient()
    for path in ["/api/schema/", "/api/docs/"]:
        assert anonymous.get(path).status_code in {401, 403}, path
        assert alice.get(path).status_code == 200, path


def test_the_cli_group_holds_exactly_the_cli_permissions_and_createdemo_joins_it(db: None) -> None:
    call_command("createdemo", "--username", "cli", "--cli-user", stdout=open("/dev/null", "w"))  # noqa: SIM115
    group = Group.objects.get(name=CLI_GROUP)
    codenames = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
    assert codenames == {"executions.add_flow", "executions.change_flow", "tracing.ingest_spans"}
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="cli")
    assert not user.is_staff and user.has_perm("tracing.ingest_spans") and user.has_perm("executions.add_flow")
    assert not user.has_perm("executions.delete_flow")


def test_a_sub_flow_execution_belongs_to_the_owner_of_its_parent(alice: APIClient, bob: APIClient) -> None:
    parent = {"name": "parent", "steps": [{"name": "child", "type": "flow", "flow": "hello"}]}
    assert alice.post("/api/flows/", parent, format="json").status_code == 201
    mine = run(bob, "parent")
    assert mine["status"] == "succeeded", mine
    child = Execution.objects.get(parent_id=mine["id"])
    assert bob.get(f"/api/executions/{child.pk}/").status_code == 200

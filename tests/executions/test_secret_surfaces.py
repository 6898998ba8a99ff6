"""A secret input's value is shown nowhere a user looks: the API, the admin, exported spans."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-live-SURFACE-5521"


def test_a_secret_input_appears_in_no_api_response_admin_page_or_exported_span(
    api_client: APIClient, user: Any, make_flow: Any, spans: Any
) -> None:
    make_flow(
        name="leaky",
        inputs={"api_key": {"type": "string", "secret": True}, "who": {"type": "string"}},
        steps=[
            {"name": "say", "type": "template", "template": "key=${inputs.api_key} for ${inputs.who}"},
            {"name": "echo", "type": "python", "function": "echo", "args": {"value": {"k": "${inputs.api_key}"}}},
            {"name": "url", "type": "template", "template": "https://x.example/?q=${inputs.api_key}"},
        ],
        outputs={"said": "${steps.say.output}", "echoed": "${steps.echo.output}"},
    )
    created = api_client.post(
        "/api/executions/", {"flow": "leaky", "inputs": {"api_key": SECRET, "who": "ada"}}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "succeeded", body
    assert body["outputs"]["said"] == "key=[REDACTED] for ada"  # masked by value, the rest intact
    pk = body["id"]

    admin = Client()
    admin.force_login(user)
    shown = {
        "POST /api/executions/": created.content.decode(),
        "GET detail": api_client.get(f"/api/executions/{pk}/").content.decode(),
        "GET list": api_client.get("/api/executions/").content.decode(),
        "admin list": admin.get("/admin/executions/execution/").content.decode(),
        "admin page": admin.get(f"/admin/executions/execution/{pk}/change/").content.decode(),
        "spans": repr([(s.name, dict(s.attributes), [dict(e.attributes) for e in s.events], s.status.description)
                       for s in spans.all()]),
    }
    assert "[REDACTED]" in shown["admin page"]
    for where, text in shown.items():
        assert SECRET not in text and "sk-live-SURFACE" not in text, where

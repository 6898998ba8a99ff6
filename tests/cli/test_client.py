"""flowexec.cli.client: DRF error bodies become one line; each API call is a CLIENT span."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from flowexec.cli import client, telemetry
from flowexec.cli.errors import CliError
from tests.cli.support import answering_servers, settings_for
from tests.live import free_port


def test_error_bodies_flatten_to_one_line():
    body = {
        "detail": "Invalid inputs",
        "problems": ['input "count": expected integer, got "x"', 'step "a": boom'],
    }
    assert client.describe_error_body(body) == 'input "count": expected integer, got "x"; step "a": boom'
    assert client.describe_error_body({"flow": ["This field is required."]}) == "flow: This field is required."
    assert client.describe_error_body({"detail": "Not found."}) == "Not found."


@pytest.fixture
def answering() -> Iterator[Any]:
    with answering_servers(b'{"detail": "x"}') as make:
        yield make


@pytest.fixture
def own_client_spans(monkeypatch, spans):
    """The CLI's own client spans, as in a CLI process (this test process has urllib3 instrumented)."""
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    monkeypatch.setattr(telemetry, "_urllib3_instrumented", lambda: False)
    with suppress_http_instrumentation():
        yield spans


def test_each_api_call_is_a_client_span_with_stable_http_semantic_conventions(answering, own_client_spans):
    service = answering(201)
    api = client.ApiClient(settings_for(["--url", f"{service.url}/base", "flows"], {}))
    api.post("/api/executions/?token=secret", {"flow": "f"})
    [span] = own_client_spans.all_named("POST")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "http.request.method": "POST",
        "url.full": f"{service.url}/base/api/executions/?token=REDACTED",
        "server.address": "127.0.0.1",
        "server.port": service.server.server_address[1],
        "http.response.status_code": 201,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_an_error_status_or_no_answer_marks_the_client_span_failed(answering, own_client_spans):
    api = client.ApiClient(settings_for(["--url", answering(503).url, "flows"], {}))
    with pytest.raises(CliError):
        api.post("/api/executions/", {})
    failed = own_client_spans.named("POST")
    assert (failed.attributes["http.response.status_code"], failed.attributes["error.type"]) == (503, "503")
    assert failed.status.status_code is StatusCode.ERROR
    refused = client.ApiClient(settings_for(["--url", f"http://127.0.0.1:{free_port()}", "flows"], {}))
    with pytest.raises(CliError, match="cannot reach"):
        refused.get("/api/flows/")
    unreachable = own_client_spans.named("GET")
    assert unreachable.attributes["error.type"] == "NewConnectionError"
    assert unreachable.status.status_code is StatusCode.ERROR
    assert [event.name for event in unreachable.events] == ["exception"]


def test_no_second_client_span_where_urllib3_is_instrumented(answering, spans):
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    assert URLLib3Instrumentor().is_instrumented_by_opentelemetry  # the test process, like the service
    api = client.ApiClient(settings_for(["--url", answering(200).url, "flows"], {}))
    api.post("/x/", {})
    assert [(s.name, s.instrumentation_scope.name) for s in spans.all()] == [
        ("POST", "opentelemetry.instrumentation.urllib3")
    ]

"""Tracing inside the service: server span, headers, propagation, engine spans, content events."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from rest_framework.test import APIClient

from executions.models import Execution
from tests.live import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def hello(make_flow: Any) -> Any:
    return make_flow(
        name="hello",
        inputs={"name": {"type": "string", "default": "world"}, "password": {"type": "string", "default": ""}},
        steps=[
            {"name": "hello", "type": "template", "template": "Hello, ${inputs.name}!"},
            {
                "name": "login",
                "type": "python",
                "function": "echo",
                "args": {"value": {"user": "${inputs.name}", "password": "${inputs.password}"}},
            },
            {"name": "shout", "type": "python", "function": "upper", "args": {"text": "${steps.hello.output}"}},
        ],
        outputs={"greeting": "${steps.shout.output}"},
    )


def server_span(spans: Any) -> Any:
    servers = [span for span in spans.all() if span.kind is SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in spans.all()]
    return servers[0]


def run(client: APIClient, flow: str = "hello", **headers: str) -> Any:
    return client.post(
        "/api/executions/", {"flow": flow, "inputs": {"name": "Ada", "password": "hunter2"}}, format="json", **headers
    )


def test_valid_traceparent_continues_the_callers_trace(api_client: APIClient, hello: Any, spans: Any) -> None:
    response = run(api_client, HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-01")
    assert response.status_code == 201
    server = server_span(spans)
    assert format_trace_id(server.context.trace_id) == TRACE_ID
    assert format_span_id(server.parent.span_id) == PARENT_ID and server.parent.is_remote
    assert response.json()["trace_id"] == TRACE_ID
    assert Execution.objects.get().trace_id == TRACE_ID


@pytest.mark.parametrize(
    "traceparent",
    [
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff is forbidden
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",  # trace id too short
        f"00-{'0' * 32}-{PARENT_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID[:-1]}g-{PARENT_ID}-01",  # not hex
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",  # upper case
        f"00-{TRACE_ID}-{PARENT_ID}-01,00-{TRACE_ID}-{PARENT_ID}-01",  # repeated header lines, merged
        "\x00garbage\xff" * 20,
    ],
)
def test_malformed_traceparent_starts_a_new_trace_and_succeeds(
    api_client: APIClient, hello: Any, spans: Any, traceparent: str
) -> None:
    response = run(api_client, HTTP_TRACEPARENT=traceparent, HTTP_TRACESTATE="a=b", HTTP_BAGGAGE="%%%;;==")
    assert response.status_code == 201
    server = server_span(spans)
    assert format_trace_id(server.context.trace_id) != TRACE_ID
    assert server.parent is None
    assert response.json()["status"] == "succeeded"


def test_headers_become_attributes_and_secrets_never_do(
    api_client: APIClient, hello: Any, spans: Any, settings: Any
) -> None:
    settings.FLOWEXEC_HEADER_ATTRIBUTES = {
        "X-Request-ID": "request_id",
        "User-Agent": "user_agent.original",
        "Authorization": "http.authorization",
        "X-Api-Key": "api_key",
        "X-Auth-Token": "auth_token",
        "X-Tenant": "tenant",
    }
    response = run(
        api_client,
        HTTP_X_REQUEST_ID="req-123",
        HTTP_USER_AGENT="tester/1.0",
        HTTP_X_API_KEY="k-secret",
        HTTP_X_AUTH_TOKEN="t-secret",
        HTTP_X_TENANT="t" * 1000,
    )
    attributes = server_span(spans).attributes
    assert attributes["request_id"] == "req-123"
    assert attributes["user_agent.original"] == "tester/1.0"
    assert len(attributes["tenant"]) == 256
    assert "http.authorization" not in attributes and "api_key" not in attributes
    assert "auth_token" not in attributes  # every credential-like header, the redaction key list
    token = api_client._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert all(token not in json.dumps(dict(span.attributes), default=str) for span in spans.all())
    assert response["X-Request-ID"] == "req-123"
    assert Execution.objects.get().request_id == "req-123"


def test_missing_or_malformed_request_id_is_replaced_by_a_uuid(api_client: APIClient, hello: Any) -> None:
    generated = run(api_client)["X-Request-ID"]
    replaced = run(api_client, HTTP_X_REQUEST_ID="bad id with spaces\n")["X-Request-ID"]
    assert len(generated) == 36 and len(replaced) == 36 and generated != replaced
    assert set(Execution.objects.values_list("request_id", flat=True)) == {generated, replaced}


def test_traceresponse_names_the_server_span(api_client: APIClient, hello: Any, spans: Any) -> None:
    response = run(api_client)
    server = server_span(spans)
    version, trace_id, span_id, flags = response["traceresponse"].split("-")
    assert (version, trace_id, span_id) == (
        "00",
        format_trace_id(server.context.trace_id),
        format_span_id(server.context.span_id),
    )
    assert int(flags, 16) == server.context.trace_flags and int(flags, 16) & 1  # sampled


def test_engine_spans_hang_under_the_server_span(api_client: APIClient, hello: Any, spans: Any) -> None:
    body = run(api_client).json()
    server = server_span(spans)
    execute = spans.named("execute_flow hello")
    assert execute.parent.span_id == server.context.span_id
    assert execute.attributes["flow.name"] == "hello"
    assert execute.attributes["flow.version"] == 1
    assert execute.attributes["flow.execution.id"] == body["id"]
    assert body["span_id"] == format_span_id(execute.context.span_id)
    for name in ["hello", "login", "shout"]:
        step = spans.named(f"step {name}")
        assert step.parent.span_id == execute.context.span_id, name
        assert step.attributes["flow.step.name"] == name
        assert step.attributes["flow.step.attempt"] == 1


def test_parallel_steps_in_pool_threads_keep_the_execution_span_as_parent(
    api_client: APIClient, make_flow: Any, spans: Any
) -> None:
    make_flow(name="fan", steps=[{"name": f"s{i}", "type": "sleep", "seconds": 0.05} for i in range(6)])
    assert api_client.post("/api/executions/", {"flow": "fan"}, format="json").status_code == 201
    execute = spans.named("execute_flow fan")
    steps = [span for span in spans.all() if span.name.startswith("step ")]
    assert len(steps) == 6
    assert {span.parent.span_id for span in steps} == {execute.context.span_id}


def test_step_content_events_are_capped_and_redacted(
    api_client: APIClient, hello: Any, spans: Any, settings: Any
) -> None:
    settings.FLOWEXEC_RECORD_CONTENT = True
    run(api_client)
    login = spans.named("step login")
    events = {event.name: event.attributes for event in login.events}
    recorded = events["flow.step.input"]["content"]
    assert "hunter2" not in recorded and "[REDACTED]" in recorded and "Ada" in recorded
    assert "flow.step.output" in events
    assert all("hunter2" not in json.dumps(dict(e.attributes)) for s in spans.all() for e in s.events)


def test_content_is_not_recorded_unless_turned_on(api_client: APIClient, hello: Any, spans: Any) -> None:
    run(api_client)
    assert spans.named("step login").events == ()
    assert spans.named("step shout").status.is_ok


def test_allowlisted_baggage_becomes_attributes_of_every_span(api_client: APIClient, hello: Any, spans: Any) -> None:
    run(api_client, HTTP_BAGGAGE="client=cli,request_id=from-baggage,secret=nope")
    for span in [server_span(spans), spans.named("execute_flow hello"), spans.named("step shout")]:
        assert span.attributes["client"] == "cli", span.name
        assert "secret" not in span.attributes


def test_async_execution_keeps_the_requests_trace(api_client: APIClient, hello: Any, spans: Any) -> None:
    response = api_client.post(
        "/api/executions/",
        {"flow": "hello", "wait": False},
        format="json",
        HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-01",
    )
    assert response.status_code == 202
    execution_id = response.json()["id"]
    wait_until(lambda: Execution.objects.get(pk=execution_id).is_finished, timeout=20, message="async run")
    execute = wait_until(lambda: spans.all_named("execute_flow hello"), timeout=10, message="span")[0]
    assert format_trace_id(execute.context.trace_id) == TRACE_ID
    assert execute.parent.span_id == server_span(spans).context.span_id


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_http_step_propagates_the_trace_and_tracestate_downstream(
    api_client: APIClient, make_flow: Any, spans: Any, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = downstream
    make_flow(
        name="call",
        steps=[{"name": "fetch", "type": "http", "method": "GET", "url": f"{url}/status"}],
        outputs={"status": "${steps.fetch.output.status}"},
    )
    response = api_client.post(
        "/api/executions/",
        {"flow": "call"},
        format="json",
        HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-01",
        HTTP_TRACESTATE="vendor=opaque,other=1",
    )
    assert response.json()["outputs"] == {"status": 200}, response.json()
    step = spans.named("step fetch")
    client = [s for s in spans.all() if s.kind is SpanKind.CLIENT and s.parent.span_id == step.context.span_id]
    assert len(client) == 1
    headers = {k.lower(): v for k, v in seen[0].items()}
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert (trace_id, parent_id) == (TRACE_ID, format_span_id(client[0].context.span_id))
    assert headers["tracestate"] == "vendor=opaque,other=1"


def test_health_checks_and_the_otlp_receiver_are_not_traced(api_client: APIClient, spans: Any) -> None:
    assert api_client.get("/healthz").status_code == 200
    api_client.post("/v1/traces", b"", content_type="application/x-protobuf")
    assert not [span for span in spans.all() if span.kind is SpanKind.SERVER]


def test_unsampled_incoming_parent_is_honoured(api_client: APIClient, hello: Any, spans: Any) -> None:
    response = run(api_client, HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-00")
    assert response.status_code == 201 and response.json()["status"] == "succeeded"
    assert spans.all() == []  # parentbased sampler: the caller decided not to sample this trace
    assert response.json()["trace_id"] == TRACE_ID  # still the caller's trace


def test_callers_request_id_wins_and_every_span_and_the_downstream_call_carry_it(
    api_client: APIClient, make_flow: Any, spans: Any, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    """One request id per chain: X-Request-ID over baggage, else baggage, and an http step forwards it."""
    url, seen = downstream
    make_flow(name="call", steps=[{"name": "fetch", "type": "http", "method": "GET", "url": f"{url}/status"}])
    response = api_client.post(
        "/api/executions/", {"flow": "call"}, format="json", HTTP_BAGGAGE="request_id=from-baggage,client=cli"
    )
    assert response["X-Request-ID"] == "from-baggage"
    assert Execution.objects.get().request_id == "from-baggage"
    assert {span.attributes.get("request_id") for span in spans.all()} == {"from-baggage"}
    assert {k.lower(): v for k, v in seen[0].items()}["x-request-id"] == "from-baggage"

    seen.clear()
    Execution.objects.all().delete()
    api_client.post(
        "/api/executions/",
        {"flow": "call"},
        format="json",
        HTTP_X_REQUEST_ID="from-header",
        HTTP_BAGGAGE="request_id=from-baggage",
    )
    assert Execution.objects.get().request_id == "from-header"
    server = [span for span in spans.all() if span.kind is SpanKind.SERVER][-1]
    chain = [span for span in spans.all() if span.context.trace_id == server.context.trace_id]
    assert len(chain) >= 4 and {span.attributes.get("request_id") for span in chain} == {"from-header"}
    downstream_headers = {k.lower(): v for k, v in seen[0].items()}
    assert downstream_headers["x-request-id"] == "from-header"
    assert "request_id=from-header" in downstream_headers["baggage"]


def test_stable_http_semantic_conventions_on_server_and_client_spans(
    api_client: APIClient, make_flow: Any, spans: Any, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    url, _ = downstream
    make_flow(name="call", steps=[{"name": "fetch", "type": "http", "method": "GET", "url": f"{url}/status?x=1"}])
    api_client.post("/api/executions/", {"flow": "call"}, format="json", HTTP_USER_AGENT="ua/" + "x" * 1005)
    server = server_span(spans)
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.scheme"] == "http"
    assert server.attributes["http.route"] == "api/executions/"
    assert server.attributes["http.response.status_code"] == 201
    old_names = {"http.method", "http.status_code", "http.url", "http.target", "http.user_agent", "http.scheme"}
    assert not old_names & set(server.attributes)
    # Capped like every header value (FLOWEXEC_HEADER_VALUE_LIMIT), not the instrumentation's raw 1,008 chars.
    assert server.attributes["user_agent.original"] == ("ua/" + "x" * 1005)[:256]
    [client] = [span for span in spans.all() if span.kind is SpanKind.CLIENT]
    assert client.attributes["http.request.method"] == "GET"
    assert client.attributes["url.full"] == f"{url}/status?x=1"
    assert client.attributes["http.response.status_code"] == 200
    assert not old_names & set(client.attributes)


def test_django_request_warnings_carry_the_requests_trace_id(
    api_client: APIClient, spans: Any, caplog: Any
) -> None:
    from tracing.logs import TraceIdsFilter

    with caplog.at_level("WARNING", logger="django.request"):
        assert api_client.get("/api/executions/00000000-0000-0000-0000-000000000000/").status_code == 404
    [record] = [r for r in caplog.records if r.name == "django.request"]
    # django.request logs after the server span ended and its context was detached.
    TraceIdsFilter().filter(record)
    assert record.otelTraceID == format_trace_id(server_span(spans).context.trace_id)


def test_without_an_sdk_span_traceresponse_and_the_stored_span_id_do_not_name_the_callers_span(
    hello: Any, monkeypatch: Any
) -> None:
    """OTEL_SDK_DISABLED=true: the API's no-op tracer hands back the caller's span context as "current"."""
    from django.http import HttpResponse
    from django.test import RequestFactory
    from opentelemetry import trace

    from executions import services, submission
    from tracing.middleware import HeaderAttributesMiddleware

    caller = trace.NonRecordingSpan(
        trace.SpanContext(int(TRACE_ID, 16), int(PARENT_ID, 16), is_remote=True, trace_flags=trace.TraceFlags(1))
    )
    monkeypatch.setattr(services, "tracer", trace.NoOpTracer())
    with trace.use_span(caller):
        response = HeaderAttributesMiddleware(lambda request: HttpResponse())(RequestFactory().get("/api/flows/"))
        execution = submission.execution_submit(flow="hello", inputs={}, inline=True)
    assert "traceresponse" not in response and response["X-Request-ID"]
    assert execution.status == Execution.Status.SUCCEEDED
    assert Execution.objects.get(pk=execution.pk).span_id != PARENT_ID


def test_server_span_url_has_sensitive_query_values_redacted(api_client: APIClient, spans: Any) -> None:
    """Issue 9: `?token=` used to land verbatim in the server span (url.query under stable conventions)."""
    uri = "/api/flows/?token=t0k-secret&page_size=5"
    api_client.get("/api/flows/", {"token": "t0k-secret", "page_size": "5"}, REQUEST_URI=uri)
    server = server_span(spans)
    assert server.attributes["url.query"] == "token=REDACTED&page_size=5"
    assert all("t0k-secret" not in json.dumps(dict(span.attributes), default=str) for span in spans.all())


def test_the_quick_start_greet_flows_downstream_call_has_its_own_server_span(
    api_client: APIClient, spans: Any, live_server: Any
) -> None:
    """README's quick start tree: step status -> urllib3 GET -> the downstream server span, in one trace."""
    from django.core.management import call_command

    from tests.live import EXAMPLES

    call_command("loadflows", str(EXAMPLES / "greet.json"))
    response = api_client.post(
        "/api/executions/", {"flow": "greet", "inputs": {"service_url": live_server.url}}, format="json"
    )
    assert response.json()["outputs"]["downstream"] == "ok", response.json()
    step = spans.named("step status")
    client = [s for s in spans.all() if s.kind is SpanKind.CLIENT and s.parent.span_id == step.context.span_id]
    assert len(client) == 1
    servers = [s for s in spans.all() if s.kind is SpanKind.SERVER and s.parent]
    downstream = [s for s in servers if s.parent.span_id == client[0].context.span_id]
    assert [s.name for s in downstream] == ["GET ping"]
    assert downstream[0].context.trace_id == step.context.trace_id

"""Shared fixtures: one in-memory span exporter per process, API clients, flows, live services."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.live import LiveService, start_service

_memory = InMemorySpanExporter()
_tracing_enabled = False


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Trace the test process like the service (Django, urllib3), into one in-memory exporter."""
    global _tracing_enabled
    import django

    django.setup()
    from tracing.instrumentation import instrument_django_process

    state = instrument_django_process("flowexec-service")
    if state.enabled and state.provider is not None:
        state.provider.add_span_processor(SimpleSpanProcessor(_memory))
        _tracing_enabled = True


class Spans:
    """Finished spans of the current test."""

    def all(self) -> list[ReadableSpan]:
        return list(_memory.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        matches = [span for span in self.all() if span.name == name]
        assert matches, f"no span named {name!r}; have {sorted({s.name for s in self.all()})}"
        return matches[-1]

    def all_named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.all() if span.name == name]


@pytest.fixture
def spans() -> Iterator[Spans]:
    """The spans finished during this test (skips when OTEL_SDK_DISABLED turns tracing off)."""
    if not _tracing_enabled:
        pytest.skip("tracing is disabled (OTEL_SDK_DISABLED)")
    _memory.clear()
    yield Spans()
    _memory.clear()


_flow_numbers = itertools.count(1)


@pytest.fixture
def make_flow(db: None) -> Any:
    """Store a flow from a few fields: make_flow(steps=[...], inputs={...}, outputs={...}, name=...)."""
    from executions import services

    def make(**fields: Any) -> Any:
        document = {"name": fields.pop("name", f"flow-{next(_flow_numbers)}"), "steps": [], **fields}
        flow, _ = services.flow_save(source=document)
        return flow

    return make


@pytest.fixture
def user(db: None) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("alice", password="pw-alice", is_staff=True, is_superuser=True)


@pytest.fixture
def api_client(user: Any) -> Any:
    """A DRF client authenticated with a real token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def live_service(tmp_path: Any) -> Iterator[LiveService]:
    """The real service under runserver with its own database, example flows and a demo token."""
    service = start_service(tmp_path)
    yield service
    service.stop()

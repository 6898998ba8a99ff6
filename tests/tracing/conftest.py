"""The tracing tests exercise the SDK itself, with providers they build: OTEL_SDK_DISABLED is not theirs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _sdk_enabled_for_tracing_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under OTEL_SDK_DISABLED=true the SDK hands out no-op tracers even from locally built providers."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)

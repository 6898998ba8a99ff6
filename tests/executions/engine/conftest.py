"""Engine test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.executions.engine.support import LocalServer


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local HTTP server running for one test."""
    local = LocalServer()
    yield local
    local.stop()


@pytest.fixture
def other_server() -> Iterator[LocalServer]:
    """A second local server: another origin (same host, another port)."""
    local = LocalServer()
    yield local
    local.stop()

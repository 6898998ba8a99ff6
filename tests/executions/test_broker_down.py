"""An async execution whose broker is unreachable is finished failed at once, never left pending."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.live import free_port, start_service

pytestmark = pytest.mark.slow


def test_unreachable_broker_fails_the_execution_with_the_reason(tmp_path: Path) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    service = start_service(tmp_path, server="gunicorn", workers=1, env={"FLOWEXEC_BROKER_URL": dead_broker})
    try:
        started = time.monotonic()
        response = service.request("POST", "/api/executions/", body=b'{"flow": "hello", "wait": false}',
                                   headers={"Content-Type": "application/json"})
        elapsed = time.monotonic() - started
        body = json.loads(response.data)
    finally:
        service.stop()
    # Async ("wait": false) is always 202, as the contract says, even when the answer is already final.
    assert response.status == 202, body
    assert body["status"] == "failed"
    assert body["error"].startswith("not queued: the broker is unreachable")
    assert elapsed < 10

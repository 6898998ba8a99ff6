"""Schemathesis against the live service, from its own OpenAPI schema: no 5xx, no response off the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.live import LiveService, start_service

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

# Bounded: a fixed seed, a few examples per operation, one worker, a time budget for the whole run.
MAX_EXAMPLES = "20"
MAX_SECONDS = "150"
SEED = "20261201"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture
def service(tmp_path: Path) -> Any:
    # Fuzzing is many requests from one token: no throttle, and no step may reach beyond this machine.
    live = start_service(tmp_path, env={"FLOWEXEC_THROTTLE_USER": "off", "FLOWEXEC_THROTTLE_AUTH_FAILURES": "off"})
    yield live
    live.stop()


def schema_of(service: LiveService) -> dict[str, Any]:
    response = service.request("GET", "/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status == 200, response.data[:300]
    return json.loads(response.data)


def test_the_schema_is_valid_and_has_no_duplicate_operations(service: LiveService) -> None:
    schema = schema_of(service)
    validate(schema)
    operation_ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert not [path for path in schema["paths"] if "{format}" in path or path.endswith(".json")]
    flows = schema["paths"]["/api/flows/"]["post"]["requestBody"]["content"]
    assert set(flows) == {"application/json", "application/yaml"}
    assert flows["application/json"]["schema"]["required"] == ["name", "steps"]
    listed = {p["name"] for p in schema["paths"]["/api/executions/"]["get"]["parameters"]}
    assert {"flow", "status", "request_id", "trace_id", "client", "since", "cursor"} <= listed


def test_fuzzing_the_api_from_its_schema_finds_no_server_error_and_no_schema_violation(
    service: LiveService, tmp_path: Path
) -> None:
    schema_path = tmp_path / "schema.json"
    schema_path.write_text(json.dumps(schema_of(service)))
    report = tmp_path / "report"
    command = [
        str(Path(sys.executable).parent / "st"), "run", str(schema_path), "--url", service.url,
        "-H", f"Authorization: Token {service.token}", "--checks", CHECKS,
        "--max-examples", MAX_EXAMPLES, "--max-time", MAX_SECONDS, "--seed", SEED, "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--request-timeout", "30", "--generation-database", "none",
        "--no-color", "--report", "junit", "--report-dir", str(report),
    ]  # fmt: skip
    # Run from tmp_path: schemathesis keeps a crash cache in its working directory.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=int(MAX_SECONDS) + 120)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout, result.stdout[-3000:]

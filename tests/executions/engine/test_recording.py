"""Redaction and size capping of recorded step content."""

from __future__ import annotations

import json

from executions.engine.recording import REDACTED, content, redact


def test_redact_replaces_sensitive_values_at_any_depth_case_insensitively():
    value = {
        "user": "bob",
        "Password": "hunter2",
        "db_password": "x",
        "headers": {"Authorization": "Bearer abc", "Accept": "json"},
        "items": [{"api_key": "k", "id": 1}, "plain"],
        "access_token": {"nested": "whole value goes"},
        "secrets": ["a"],
    }
    assert redact(value) == {
        "user": "bob",
        "Password": REDACTED,
        "db_password": REDACTED,
        "headers": {"Authorization": REDACTED, "Accept": "json"},
        "items": [{"api_key": REDACTED, "id": 1}, "plain"],
        "access_token": REDACTED,
        "secrets": REDACTED,
    }


def test_redact_adds_configured_keys_and_leaves_the_original_alone():
    value = {"PIN": 1234, "pin_code": 1, "name": "x"}
    assert redact(value, {"pin"}) == {"PIN": REDACTED, "pin_code": REDACTED, "name": "x"}
    assert value == {"PIN": 1234, "pin_code": 1, "name": "x"}
    assert redact(value) == value


def test_redact_passes_scalars_through():
    assert redact("password") == "password"
    assert redact(None) is None


def test_content_is_redacted_json():
    assert json.loads(content({"token": "t", "n": 1})) == {"token": REDACTED, "n": 1}


def test_content_is_capped_in_bytes():
    text = content({"text": "é" * 100}, max_bytes=40)
    assert len(text.encode()) <= 40
    assert text.endswith("...[truncated]")
    assert content({"a": 1}, max_bytes=40) == '{"a": 1}'

"""Recorded step content: redacted by key, masked by value, size-capped JSON."""

from __future__ import annotations

import json

from executions.engine.recording import content
from tracing.redaction import REDACTED


def test_content_is_redacted_json():
    assert json.loads(content({"token": "t", "n": 1})) == {"token": REDACTED, "n": 1}


def test_content_masks_secret_values_under_any_key():
    text = content({"note": "the key is s3cr3t-v4lue", "url": "http://h/?k=s3cr3t-v4lue"}, secrets=["s3cr3t-v4lue"])
    assert "s3cr3t" not in text
    assert json.loads(text) == {"note": f"the key is {REDACTED}", "url": f"http://h/?k={REDACTED}"}


def test_content_is_capped_in_bytes():
    text = content({"text": "é" * 100}, max_bytes=40)
    assert len(text.encode()) <= 40
    assert text.endswith("...[truncated]")
    assert content({"a": 1}, max_bytes=40) == '{"a": 1}'

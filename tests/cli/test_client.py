"""flowexec.cli.client: DRF error bodies become one line."""

from __future__ import annotations

from flowexec.cli import client


def test_error_bodies_flatten_to_one_line():
    body = {
        "detail": "Invalid inputs",
        "problems": ['input "count": expected integer, got "x"', 'step "a": boom'],
    }
    assert client.describe_error_body(body) == 'input "count": expected integer, got "x"; step "a": boom'
    assert client.describe_error_body({"flow": ["This field is required."]}) == "flow: This field is required."
    assert client.describe_error_body({"detail": "Not found."}) == "Not found."

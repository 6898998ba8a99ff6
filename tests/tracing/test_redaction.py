"""The redaction rules: sensitive keys, masking secret values in texts, values, logs and recorded exceptions."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
from typing import Any

import pytest

from tracing import redaction
from tracing.redaction import REDACTED, SecretsLogFilter, is_sensitive, mask, mask_value, masking, redact

SECRET = "hunter2-xyz"


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


@pytest.mark.parametrize(
    "key",
    ["pwd", "db_pwd", "passwd", "credentials", "aws_credential", "auth", "X-Auth-Token", "X-Api-Key", "XApiKey",
     "apikey", "Cookie", "Proxy-Authorization", "client_secret", "accessToken", "private_key"],
)
def test_sensitive_keys_include_the_agreed_list(key):
    assert is_sensitive(key)


@pytest.mark.parametrize("key", ["author", "authority", "name", "keyboard", "spin", "Accept"])
def test_short_words_match_only_whole_words(key):
    assert not is_sensitive(key)


def test_redaction_keys_come_from_flowexec_redact_keys_too(monkeypatch):
    assert not is_sensitive("pin_code")
    monkeypatch.setenv("FLOWEXEC_REDACT_KEYS", "pin, otp")
    assert is_sensitive("pin_code") and is_sensitive("OTP")


def test_mask_replaces_a_secret_as_written_url_encoded_and_json_escaped():
    secret = 'p@ss w/"q"'
    text = f"raw {secret} url ?k={'p%40ss%20w%2F%22q%22'} form {'p%40ss+w%2F%22q%22'} json {json.dumps(secret)}"
    masked = mask(text, [secret])
    assert masked == f'raw {REDACTED} url ?k={REDACTED} form {REDACTED} json "{REDACTED}"'


def test_mask_value_masks_strings_keys_and_numbers_inside_structures():
    value = {"greeting": f"Hello {SECRET}!", SECRET: [1, 123456], "n": 7}
    assert mask_value(value, [SECRET, 123456]) == {
        "greeting": f"Hello {REDACTED}!",
        REDACTED: [1, REDACTED],
        "n": 7,
    }


def test_very_short_and_empty_secrets_are_not_masked_by_value():
    assert mask("a 12 b", ["12", "", None, True]) == "a 12 b"


def test_masking_is_active_in_threads_started_from_the_context():
    seen: list[str] = []
    with masking([SECRET]):
        thread = threading.Thread(target=contextvars.copy_context().run, args=(lambda: seen.append(
            redaction.active_mask(f"x {SECRET}")),))
        thread.start()
        thread.join(5)
        assert redaction.active_mask(SECRET) == REDACTED
    assert seen == [f"x {REDACTED}"]
    assert redaction.active_mask(SECRET) == SECRET


def test_log_filter_masks_message_arguments_and_traceback(caplog):
    logger = logging.getLogger("tests.redaction")
    caplog.handler.addFilter(SecretsLogFilter())
    with masking([SECRET]):
        logger.warning("got %s", SECRET)
        try:
            raise RuntimeError(f"bad {SECRET}")
        except RuntimeError:
            logger.exception("step failed")
    logger.warning("outside %s", SECRET)
    assert SECRET not in caplog.text.replace(f"outside {SECRET}", "")
    assert f"got {REDACTED}" in caplog.text and f"RuntimeError: bad {REDACTED}" in caplog.text


def test_redact_url_drops_userinfo_and_sensitive_query_values():
    url = "https://bob:pw@host:8443/p?token=abc&page=2&X-Goog-Signature=s&sig=x&q=ok"
    assert redaction.redact_url(url) == (
        "https://host:8443/p?token=REDACTED&page=2&X-Goog-Signature=REDACTED&sig=REDACTED&q=ok"
    )


def test_exported_log_records_are_masked_too():
    from opentelemetry.sdk._logs import LoggerProvider

    from tracing.log_export import log_handler

    handler = log_handler(LoggerProvider())
    assert any(isinstance(item, SecretsLogFilter) for item in handler.filters)


def test_the_instrumentations_header_capture_redacts_every_credential_like_header(monkeypatch: Any) -> None:
    from opentelemetry.util.http import OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS as SANITIZE
    from opentelemetry.util.http import SanitizeValue

    from tracing.instrumentation import _never_capture_secret_headers

    monkeypatch.setenv(SANITIZE, "x-internal")
    _never_capture_secret_headers()
    sanitizer = SanitizeValue(os.environ[SANITIZE].split(","))
    for header in ("Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Auth-Token", "X-Internal",
                   "X-Client-Secret", "X-Amz-Security-Token", "X-Private-Key", "Api_Key"):
        assert sanitizer.sanitize_header_value(header, "v") == "[REDACTED]", header
    assert sanitizer.sanitize_header_value("X-Tenant", "acme") == "acme"

"""FLOWEXEC_* settings: the DEFAULTS take effect, and bad values fail at start-up as system checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from executions import checks, conf
from flowexec import bootstrap


def ids(errors: list[Any]) -> list[str]:
    return [error.id for error in errors]


def test_conf_defaults_take_effect_because_settings_do_not_restate_them(monkeypatch: Any) -> None:
    monkeypatch.setitem(conf.DEFAULTS, "FLOWEXEC_STEP_WORKERS", 7)
    monkeypatch.setitem(conf.DEFAULTS, "FLOWEXEC_STALE_AFTER", 42.0)
    assert conf.get("FLOWEXEC_STEP_WORKERS") == 7
    assert conf.seconds("FLOWEXEC_STALE_AFTER") == 42.0


def test_the_shipped_settings_pass_the_checks() -> None:
    assert checks.check_execution_settings() == [] and checks.check_tracing_settings() == []


def test_unknown_python_function_is_a_check_error_naming_the_setting(settings: Any) -> None:
    settings.FLOWEXEC_PYTHON_FUNCTIONS = ["no_such_module.fn"]
    errors = checks.check_execution_settings()
    assert ids(errors) == ["flowexec.E004"]
    assert "FLOWEXEC_PYTHON_FUNCTIONS" in errors[0].msg and "no_such_module" in errors[0].msg


def test_malformed_http_allowlist_entry_is_a_check_error(settings: Any) -> None:
    settings.FLOWEXEC_HTTP_ALLOWED_HOSTS = ["api.example:443", "api.example:https"]
    errors = checks.check_execution_settings()
    assert ids(errors) == ["flowexec.E006"] and '"api.example:https"' in errors[0].msg


@pytest.mark.parametrize("value", [["X-Request-ID"], {"X-Request-ID": 3}, {"": "request_id"}])
def test_malformed_header_attributes_is_a_check_error(settings: Any, value: Any) -> None:
    settings.FLOWEXEC_HEADER_ATTRIBUTES = value
    assert ids(checks.check_tracing_settings()) == ["flowexec.E010"]


@pytest.mark.parametrize(("name", "value"), [("FLOWEXEC_STALE_AFTER", 0), ("FLOWEXEC_SYNC_WAIT", -1.0),
                                             ("FLOWEXEC_STEP_WORKERS", "4"), ("FLOWEXEC_ASYNC_WORKERS", 0)])
def test_numbers_must_be_positive(settings: Any, name: str, value: Any) -> None:
    setattr(settings, name, value)
    errors = checks.check_execution_settings()
    assert len(errors) == 1 and name in errors[0].msg


def test_a_process_refuses_to_start_on_a_bad_setting(settings: Any) -> None:
    settings.FLOWEXEC_HEADER_ATTRIBUTES = ["not", "a", "mapping"]
    with pytest.raises(ImproperlyConfigured, match="FLOWEXEC_HEADER_ATTRIBUTES"):
        bootstrap.check_settings()

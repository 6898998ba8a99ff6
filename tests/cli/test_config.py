"""flowexec.cli.config: options, environment, config file; the request id rule."""

from __future__ import annotations

import pytest

from flowexec.cli import errors
from tests.cli.support import settings_for


def test_settings_come_from_options_then_environment():
    settings = settings_for(
        ["run", "hello", "--json", "--timeout", "5"], {"FLOWEXEC_URL": "http://127.0.0.1:9/", "FLOWEXEC_TOKEN": "t"}
    )
    assert (settings.url, settings.token, settings.timeout, settings.json) == (
        "http://127.0.0.1:9",
        "t",
        5,
        True,
    )
    assert len(settings.request_id) == 36
    settings = settings_for(["--url", "http://h:1", "--request-id", "rid-1", "flows"], {"FLOWEXEC_URL": "http://x"})
    assert (settings.url, settings.request_id, settings.json) == ("http://h:1", "rid-1", False)


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "ftp://x", "flows"],
        ["--request-id", "a b", "flows"],
        # The service's rule (tracing.attributes.REQUEST_ID_PATTERN): at most 128 of [A-Za-z0-9._:@/+=-].
        ["--request-id", "r" * 129, "flows"],
        ["--request-id", "caf\u00e9", "flows"],
        ["--request-id", "a;b", "flows"],
    ],
)
def test_invalid_settings_are_usage_errors(argv):
    with pytest.raises(errors.CliError) as caught:
        settings_for(argv, {})
    assert caught.value.exit_code == errors.EXIT_USAGE


def test_request_ids_the_service_accepts_are_accepted():
    for request_id in ("r" * 128, "ci:build/42@main+x=1.a_b-c"):
        assert settings_for(["--request-id", request_id, "flows"], {}).request_id == request_id


def test_the_callers_request_id_in_baggage_is_used_unless_one_is_given():
    assert settings_for(["flows"], {"BAGGAGE": "a=1,request_id=ci-7"}).request_id == "ci-7"
    assert settings_for(["--request-id", "mine", "flows"], {"BAGGAGE": "request_id=ci-7"}).request_id == "mine"
    # Not an id the service accepts: ignored like any invalid carrier value, so a fresh UUID.
    assert len(settings_for(["flows"], {"BAGGAGE": "request_id=has%20space"}).request_id) == 36


def test_config_file_supplies_url_and_token_below_environment_and_options(tmp_path):
    path = tmp_path / "config"
    path.write_text('url = "http://from-file:1"\ntoken = "file-token"\n')
    path.chmod(0o600)
    settings = settings_for(["flows"], {"FLOWEXEC_CONFIG": str(path)})
    assert (settings.url, settings.token) == ("http://from-file:1", "file-token")
    settings = settings_for(["flows"], {"FLOWEXEC_CONFIG": str(path), "FLOWEXEC_TOKEN": "env-token"})
    assert (settings.url, settings.token) == ("http://from-file:1", "env-token")
    settings = settings_for(["--token", "opt", "--url", "http://o:2", "flows"], {"FLOWEXEC_CONFIG": str(path)})
    assert (settings.url, settings.token) == ("http://o:2", "opt")
    # The default place: $XDG_CONFIG_HOME/flowexec/config.
    (tmp_path / "flowexec").mkdir()
    (tmp_path / "flowexec" / "config").write_text('url = "http://xdg:3"\n')
    assert settings_for(["flows"], {"XDG_CONFIG_HOME": str(tmp_path)}).url == "http://xdg:3"


@pytest.mark.parametrize(
    ("text", "mode", "fragment"),
    [
        ('token = "t"\n', 0o644, "chmod 600"),
        ('token = "t"\n', 0o640, "chmod 600"),
        ('colour = "blue"\n', 0o600, "unknown key 'colour'"),
        ("url = \n", 0o600, "invalid config file"),
    ],
)
def test_bad_config_files_are_usage_errors(tmp_path, text, mode, fragment):
    path = tmp_path / "config"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(errors.CliError, match=fragment) as caught:
        settings_for(["flows"], {"FLOWEXEC_CONFIG": str(path)})
    assert caught.value.exit_code == errors.EXIT_USAGE
    with pytest.raises(errors.CliError, match="does not exist"):
        settings_for(["--config", str(tmp_path / "missing"), "flows"], {})

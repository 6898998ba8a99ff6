"""DRF throttling: failed authentications per address and per-user request rates answer 429 as JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str | None]]:
    """Throttle rates for this test (DRF reads them once, at import), with an empty cache."""
    rates: dict[str, str | None] = {"anon": None, "user": None, "auth_failure": None}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()
    yield rates
    cache.clear()


def test_repeated_bad_tokens_are_throttled_even_with_a_good_one_after(
    rates: dict[str, str | None], api_client: APIClient
) -> None:
    rates["auth_failure"] = "3/minute"
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Token guess")
    assert [guesser.get("/api/flows/").status_code for _ in range(3)] == [401, 401, 401]
    throttled = guesser.get("/api/flows/")
    assert throttled.status_code == 429 and "detail" in throttled.json() and throttled["Retry-After"]
    # Same address, now with the right token: still blocked, so guessing cannot be told apart from success.
    assert api_client.get("/api/flows/").status_code == 429
    other = APIClient(REMOTE_ADDR="10.0.0.9")
    other.credentials(HTTP_AUTHORIZATION=api_client._credentials["HTTP_AUTHORIZATION"])
    assert other.get("/api/flows/").status_code == 200


def test_good_tokens_are_not_counted_as_failures(rates: dict[str, str | None], api_client: APIClient) -> None:
    rates["auth_failure"] = "2/minute"
    assert all(api_client.get("/api/flows/").status_code == 200 for _ in range(5))


def test_each_user_has_a_request_rate(rates: dict[str, str | None], api_client: APIClient) -> None:
    rates["user"] = "4/minute"
    assert [api_client.get("/api/flows/").status_code for _ in range(5)] == [200, 200, 200, 200, 429]
    assert api_client.get("/api/executions/").json()["detail"].startswith("Request was throttled")


def test_rates_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from flowexec.settings import env_rate

    monkeypatch.setenv("FLOWEXEC_THROTTLE_USER", "off")
    assert env_rate("FLOWEXEC_THROTTLE_USER", "10/s") is None
    monkeypatch.setenv("FLOWEXEC_THROTTLE_USER", "50/minute")
    assert env_rate("FLOWEXEC_THROTTLE_USER", "10/s") == "50/minute"
    monkeypatch.setenv("FLOWEXEC_THROTTLE_USER", "lots")
    with pytest.raises(ImproperlyConfigured, match="FLOWEXEC_THROTTLE_USER"):
        env_rate("FLOWEXEC_THROTTLE_USER", "10/s")

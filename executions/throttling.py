"""DRF throttles: per-user and anonymous request rates, and failed token authentications per client address."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class AuthFailureThrottle(SimpleRateThrottle):
    """Counts failed authentications per client address (rate `auth_failure`); only failures count."""

    scope = "auth_failure"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def blocked(self, request: Request) -> bool:
        """True while this address has used up its failures; nothing is recorded."""
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request, None)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return len(self.history) >= self.num_requests

    def record_failure(self, request: Request) -> None:
        """Count one failed authentication of this address."""
        if self.rate is None:
            return
        self.blocked(request)
        self.throttle_success()


class ThrottledTokenAuthentication(TokenAuthentication):
    """DRF token authentication that answers 429 to an address after too many bad tokens."""

    def authenticate(self, request: Request) -> Any:
        throttle = AuthFailureThrottle()
        if throttle.blocked(request):
            raise Throttled(wait=throttle.wait(), detail="too many failed authentications")
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure(request)
            raise

"""Answer paths outside Latin-1 before the OpenTelemetry Django middleware sees them."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


class LatinPathGuardMiddleware:
    """404 for a path with characters beyond U+00FF: no route has one, and the OTel middleware would 500 on it.

    The instrumentation rebuilds the URL with wsgiref's request_uri, which encodes the decoded path as
    Latin-1 and raises on anything else (an astral character, most non-Latin scripts).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.META.get("PATH_INFO", "").encode("latin-1")
        except UnicodeEncodeError:
            return JsonResponse({"detail": "Not found."}, status=404)
        return self.get_response(request)

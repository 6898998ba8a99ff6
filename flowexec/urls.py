"""URL routes: the API under /api/, the OTLP receiver, health check, schema and admin."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from executions.api_errors import not_found
from executions.dashboard import dashboard
from executions.views import healthz, ping

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("ping", ping, name="ping"),
    path("api/", include("executions.urls")),
    path("", include("tracing.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/dashboard/", dashboard, name="flowexec-dashboard"),
    # Any other path under /api/ (a name no route accepts, a missing slash) is a JSON 404, with DEBUG
    # too (Django's DEBUG 404 page is HTML), and never the POST-without-slash redirect error.
    re_path(r"^api/", not_found),
    path("admin/", admin.site.urls),
]

handler400 = "rest_framework.exceptions.bad_request"
handler404 = "executions.api_errors.not_found"
handler500 = "rest_framework.exceptions.server_error"

"""URL routes: the API under /api/, the OTLP receiver, health check, schema and admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from executions.dashboard import dashboard
from executions.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/", include("executions.urls")),
    path("", include("tracing.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/dashboard/", dashboard, name="flowexec-dashboard"),
    path("admin/", admin.site.urls),
]

handler400 = "rest_framework.exceptions.bad_request"
handler404 = "executions.api_errors.not_found"
handler500 = "rest_framework.exceptions.server_error"

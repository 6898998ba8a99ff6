"""Routes of the tracing app, included at the URL root."""

from __future__ import annotations

from django.urls import path

from tracing import views

urlpatterns = [
    path("v1/traces", views.OtlpTracesView.as_view(), name="otlp-traces"),
    path("api/traces/", views.TraceListView.as_view(), name="trace-list"),
    path("api/traces/<str:trace_id>/", views.TraceDetailView.as_view(), name="trace-detail"),
]

"""Django app for the tracing core: span store, OTLP receiver, middleware."""

from django.apps import AppConfig


class TracingConfig(AppConfig):
    name = "tracing"
    verbose_name = "Tracing"
    default_auto_field = "django.db.models.BigAutoField"

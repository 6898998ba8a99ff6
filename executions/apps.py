"""Django app for flows and executions."""

from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Flows and executions"
    default_auto_field = "django.db.models.BigAutoField"

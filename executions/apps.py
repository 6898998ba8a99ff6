"""Django app for flows and executions."""

from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Flows and executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the FLOWEXEC_* system checks."""
        # In ready(), as Django recommends: importing the app config stays free of side effects.
        from executions import checks  # noqa: F401

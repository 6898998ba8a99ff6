"""Django app for flows and executions."""

from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Flows and executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the FLOWEXEC_* system checks and the open-span source of running executions."""
        # In ready(), as Django recommends: importing the app config stays free of side effects.
        from executions import checks  # noqa: F401
        from executions.open_spans import open_spans
        from tracing.store.selectors import open_span_source_register

        # Traces show running executions' steps, which the span store only gets when they end.
        open_span_source_register(open_spans)

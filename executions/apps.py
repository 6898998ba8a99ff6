"""Django app for flows and executions."""

from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Flows and executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the FLOWEXEC_* system checks, the trace access rules and the open-span source."""
        # In ready(), as Django recommends: importing the app config stays free of side effects.
        from executions import checks, selectors  # noqa: F401
        from executions.open_spans import open_spans
        from tracing.access import trace_access_register
        from tracing.store.selectors import open_span_source_register

        # The trace API and the OTLP receiver show and accept traces by their executions' visibility.
        trace_access_register(selectors)

        # Traces show running executions' steps, which the span store only gets when they end.
        open_span_source_register(open_spans)

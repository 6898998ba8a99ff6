"""flowexec: a flow executor service and its CLI, traced end to end with OpenTelemetry."""

__version__ = "0.1.0"

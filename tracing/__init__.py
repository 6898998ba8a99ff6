"""Tracing core shared by every flowexec process: provider, exporters, propagation, middleware, span store."""

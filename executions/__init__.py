"""Flows and their executions: the engine, services, API, admin and commands."""

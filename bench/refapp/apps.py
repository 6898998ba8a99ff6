"""Reference app config."""

from django.apps import AppConfig


class RefappConfig(AppConfig):
    name = "bench.refapp"
    label = "benchref"
    default_auto_field = "django.db.models.BigAutoField"

"""One row per reference request."""

from django.db import models


class Note(models.Model):
    """What the reference endpoint inserts: the same body a POST /api/executions/ carries."""

    flow = models.CharField(max_length=100)
    inputs = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"note {self.pk}"

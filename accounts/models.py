"""Per-user settings the platform keeps beside Django's own user."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Quota(models.Model):
    """A staff-editable limit on one user's active deployments."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota",
    )
    max_deployments = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Active deployments this user may hold; blank means the platform "
                  "default (PAAS_USER_QUOTA).",
    )

    def __str__(self) -> str:
        limit = "default" if self.max_deployments is None else self.max_deployments
        return f"quota of {self.user}: {limit}"

"""Reads about accounts."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Quota


def user_quota(*, user: AbstractBaseUser) -> int:
    """How many active deployments ``user`` may hold: their own quota when staff set
    one, else ``PAAS_USER_QUOTA``."""
    limit = (
        Quota.objects.filter(user_id=user.pk)
        .values_list("max_deployments", flat=True)
        .first()
    )
    return settings.PAAS_USER_QUOTA if limit is None else limit

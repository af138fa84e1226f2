"""Writes about accounts."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser


def user_register(*, username: str, email: str, password: str) -> AbstractUser:
    """A new, active, non-staff user (the caller has validated the input)."""
    user: AbstractUser = get_user_model().objects.create_user(
        username=username, email=email, password=password,
    )
    return user

"""Fixtures shared by every suite: personas and a way to warm pools."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser


@pytest.fixture
def make_user(db: None) -> Callable[..., AbstractUser]:
    def make(username: str, *, staff: bool = False, password: str = "pw-Secret-123") -> AbstractUser:
        user = get_user_model().objects.create_user(
            username=username, email=f"{username}@example.com", password=password,
            is_staff=staff, is_superuser=staff,
        )
        return user

    return make


@pytest.fixture
def alice(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user("bob")


@pytest.fixture
def charlie(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user("charlie", staff=True)

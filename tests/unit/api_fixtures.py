"""Fixtures for the accounts/deployments API tests (loaded with ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken


@pytest.fixture(autouse=True)
def fresh_state(request: pytest.FixtureRequest, settings: SettingsWrapper,
                tmp_path: Path) -> Iterator[None]:
    """Each test: its own content store, and no throttle history from the last one
    (the throttle cache is a database table: only tests with a database have one)."""
    settings.PAAS_CONTENT_DIR = tmp_path / "content"
    settings.PAAS_PUBLIC_HOST = ""
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(request.fixturenames))
    if uses_db:
        cache.clear()
    yield
    if uses_db:
        cache.clear()


@pytest.fixture
def api() -> Callable[..., APIClient]:
    """``api(alice)``: a client sending a real access token of alice; ``api()``: anonymous."""

    def make(user: AbstractBaseUser | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            token = RefreshToken.for_user(user).access_token
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make

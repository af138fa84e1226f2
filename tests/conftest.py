"""Fixtures shared by every suite: personas and a way to warm pools."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, User
from django.test import Client


@pytest.fixture(autouse=True)
def forget_cached_runtimes() -> Iterator[None]:
    """A test database starts again from nothing, and may hand out a runtime id that
    the last test's cache holds at the same revision (production databases never reuse
    ids: SQLite's AUTOINCREMENT, PostgreSQL's sequences)."""
    from pools import services

    services._runtimes.clear()
    yield
    services._runtimes.clear()


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


@pytest.fixture
def operator(charlie: User) -> Client:
    """A test client logged in as charlie, the staff persona."""
    client = Client()
    client.force_login(charlie)
    return client


RUNTIME_FORM_FIELDS = ["name", "display_name", "port_min", "port_max", "internal_port",
                       "image", "content_root", "mem_limit_mb", "cpus", "pids_limit", "cap_add",
                       "idle_ttl", "step", "mem_estimate_mb", "max_share"]


def runtime_form(runtime: object, **changes: object) -> dict[str, object]:
    """The admin change form of a runtime as posted, with ``changes`` applied."""
    data: dict[str, object] = {f: getattr(runtime, f) for f in RUNTIME_FORM_FIELDS}
    # Blank optional numbers (max total, lifetimes) post as empty strings.
    data |= {f: getattr(runtime, f) if getattr(runtime, f) is not None else ""
             for f in ("max_total", "max_age", "idle_timeout", "lifetime_extension")}
    return data | {"enabled": "on"} | changes

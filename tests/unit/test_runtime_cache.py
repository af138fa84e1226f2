"""The launch keeps runtime rows per process (pools.services.runtime_cached) and checks
the row's revision in its own transaction: every write, whoever makes it, reaches the
next launch."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connections
from rest_framework.test import APIClient

from pools.models import Runtime

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)


def launch(client: APIClient, runtime: str = "nginx") -> tuple[int, str]:
    response = client.post("/api/deployments/", {"runtime": runtime}, format="json")
    return response.status_code, response.json().get("code", "")


def elsewhere(sql: str, params: list[object]) -> None:
    """A write by another connection, as another web worker, the task cluster or
    an operator's psql would make it."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(sql, params)
        if not other.get_autocommit():
            other.commit()
    finally:
        other.close()


def revision(name: str = "nginx") -> int:
    return Runtime.objects.values_list("revision", flat=True).get(name=name)


def test_every_write_path_bumps_the_revision(warm: Callable) -> None:
    warm("nginx", 1)
    seen = [revision()]
    stale = Runtime.objects.get(name="nginx")
    Runtime.objects.filter(name="nginx").update(max_share=0.5)  # QuerySet.update()
    seen.append(revision())
    stale.save()  # an admin form read before that change writes its older revision back
    seen.append(revision())
    elsewhere("UPDATE pools_runtime SET cpus = 0.25 WHERE name = %s", ["nginx"])
    seen.append(revision())
    assert seen == sorted(set(seen)) and len(seen) == 4


def test_a_change_on_another_connection_reaches_the_next_launch(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    warm("nginx", 3)
    client = api(alice)
    assert launch(client) == (201, "")  # the process now keeps the nginx row
    elsewhere("UPDATE pools_runtime SET enabled = %s WHERE name = %s", [False, "nginx"])
    assert launch(client) == (400, "invalid")
    elsewhere("UPDATE pools_runtime SET enabled = %s, max_share = %s WHERE name = %s",
              [True, 0.01, "nginx"])
    assert launch(client) == (429, "share_exceeded")


def test_a_queryset_update_reaches_the_next_launch(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    warm("nginx", 2)
    client = api(alice)
    Runtime.objects.filter(name="nginx").update(enabled=False)
    assert launch(client) == (400, "invalid")  # cached disabled now
    Runtime.objects.filter(name="nginx").update(enabled=True)
    assert launch(client) == (201, "")


def test_a_deleted_runtime_is_unknown_to_the_next_launch(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    client = api(alice)
    assert launch(client, "node") == (503, "pool_exhausted")  # kept, though none is idle
    Runtime.objects.filter(name="node").delete()
    assert launch(client, "node") == (400, "invalid")

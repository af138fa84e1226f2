"""The admin's pool actions through the Django test client, on the real engine."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from deployments.models import Deployment
from deployments.services import deployment_create, deployment_upload
from pools.models import PoolContainer, Runtime, SlotStatus
from tests.conftest import runtime_form
from tests.integration.conftest import http_get

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
S = SlotStatus
CHANGELIST = "/admin/pools/poolcontainer/"


def run_action(client: Client, name: str, ids: list[int]) -> str:
    response = client.post(CHANGELIST, {"action": name,
                                        "_selected_action": [str(i) for i in ids]}, follow=True)
    return " | ".join(str(m) for m in response.context["messages"])


def test_add_two_nginx_containers_that_answer(operator: Client, warm_pools: Callable) -> None:
    warm_pools(nginx=1)
    nginx = Runtime.objects.get(name="nginx")
    response = operator.post(reverse("admin:pools_poolcontainer_add_containers"),
                             {"runtime": nginx.pk, "count": 2}, follow=True)
    assert "adding 2 nginx container(s)" in response.content.decode().lower()
    slots = list(PoolContainer.objects.filter(runtime=nginx))
    assert len(slots) == 3 and all(s.status == S.IDLE for s in slots)
    assert all(http_get(s.port)[0] == 200 for s in slots)


def test_reinitialize_assigned_slot_keeps_port_and_files(
        operator: Client, warm_pools: Callable, alice) -> None:
    warm_pools(nginx=1)
    deployment = deployment_create(user=alice, runtime_name="nginx")
    deployment_upload(deployment=deployment, uploads=[("index.html", io.BytesIO(b"alice's"))])
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    assert "reinitializing" in run_action(operator, "reinitialize", [slot.pk])
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.port == slot.port and fresh.generation == slot.generation + 1
    assert fresh.container_id != slot.container_id and fresh.owner == alice
    assert http_get(fresh.port, expect="alice's")[1] == "alice's"


def test_release_recycles_the_slot_and_ends_the_deployment(
        operator: Client, warm_pools: Callable, alice) -> None:
    warm_pools(nginx=1)
    deployment = deployment_create(user=alice, runtime_name="nginx")
    deployment_upload(deployment=deployment, uploads=[("index.html", io.BytesIO(b"gone soon"))])
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    assert "(was alice)" in run_action(operator, "release", [slot.pk])
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.owner is None
    assert fresh.container_id != slot.container_id
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.RELEASED
    status, body = http_get(fresh.port)
    assert status == 200 and "gone soon" not in body


def test_shrinking_the_size_removes_idle_slots_only(
        operator: Client, warm_pools: Callable, alice) -> None:
    warm_pools(nginx=3)
    deployment = deployment_create(user=alice, runtime_name="nginx")
    nginx = Runtime.objects.get(name="nginx")
    data = runtime_form(nginx, pool_size=1)
    response = operator.post(reverse("admin:pools_runtime_change", args=[nginx.pk]), data,
                             follow=True)
    assert "converges to it in the background" in response.content.decode()
    remaining = list(PoolContainer.objects.filter(runtime=nginx))
    assert [s.pk for s in remaining] == [deployment.slot_id]
    assert http_get(remaining[0].port)[0] == 200

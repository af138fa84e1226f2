"""Elastic pools on the real engine. Lifetimes: the container's received-bytes counter tells a
deployment someone uses from one only our health probes reach, and the cull releases
the unused one with the reason in its history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from deployments import lifetimes
from deployments.models import Deployment
from deployments.services import deployment_create
from pools import health
from pools.engine import DockerEngine
from pools.models import MonitorPass, PoolContainer, Runtime
from tests.integration.conftest import http_get

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_network_counter_grows_with_requests(warm_pools: Callable,
                                                 real_engine: DockerEngine) -> None:
    slot = warm_pools(nginx=1)["nginx"][0]
    assert real_engine.network_rx_bytes("no-such-container") is None
    before = real_engine.network_rx_bytes(slot.container_id)
    assert before is not None
    for _ in range(5):
        assert http_get(slot.port)[0] == 200
    after = real_engine.network_rx_bytes(slot.container_id)
    assert after is not None and after - before >= 5 * 300


def test_used_deployment_stays_and_probed_only_one_is_culled(
        warm_pools: Callable, alice: AbstractUser, bob: AbstractUser) -> None:
    warm_pools(nginx=2)
    Runtime.objects.filter(name="nginx").update(idle_timeout=1800)
    used = deployment_create(user=alice, runtime_name="nginx")
    probed = deployment_create(user=bob, runtime_name="nginx")
    lifetimes.deployments_cull()  # baselines
    past = timezone.now() - timedelta(seconds=1801)
    Deployment.objects.update(last_activity_at=past,
                              net_checked_at=timezone.now() - timedelta(seconds=60))
    MonitorPass.objects.create()  # a reconcile pass probes both
    assert used.port is not None and probed.port is not None
    for port in (used.port, probed.port):
        assert health.http_answers(port, timeout=2)
    for _ in range(8):  # someone looks at alice's site
        assert http_get(used.port)[0] == 200
    lifetimes.deployments_cull()
    used.refresh_from_db()
    probed.refresh_from_db()
    assert (used.status, used.ended_reason) == ("active", "")
    assert (probed.status, probed.ended_reason) == ("released", "idle_timeout")
    assert PoolContainer.objects.get(pk=probed.slot_id).owner_id is None


def test_a_waiting_launch_turns_running_on_a_real_container(
        warm_pools: Callable, alice: AbstractUser) -> None:
    """No idle container, one being built: the launch is pending, then runs and serves."""
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from pools import services

    warm_pools(nginx=0)
    slot = services.slot_create(runtime=Runtime.objects.get(name="nginx"))  # being built
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(alice).access_token}")
    response = client.post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert services.slot_rebuild(slot_id=slot.pk, generation=slot.generation)  # the build
    body = client.get(f"/api/deployments/{response.json()['id']}/").json()
    assert (body["status"], body["port"]) == ("running", slot.port)
    assert http_get(slot.port)[0] == 200


def test_an_elastic_pool_grows_for_a_class_and_stops_at_max_total(
        settings: Any, warm_pools: Callable, make_user: Callable[..., AbstractUser]) -> None:
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    settings.PAAS_ELASTIC = True
    warm_pools(nginx=2)
    Runtime.objects.filter(name="nginx").update(max_total=5, step=2)
    answers = []
    for n in range(6):
        client = APIClient()
        token = RefreshToken.for_user(make_user(f"s{n}")).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.post("/api/deployments/", {"runtime": "nginx"}, format="json")
        answers.append(response.status_code)
        if response.status_code in (201, 202):
            body = client.get(f"/api/deployments/{response.json()['id']}/").json()
            assert body["status"] == "running"
            assert http_get(body["port"])[0] == 200
    assert set(answers[:5]) <= {201, 202}  # each got a container, at once or after a wait
    assert answers[5] == 503
    assert PoolContainer.objects.filter(runtime__name="nginx").count() == 5


def test_a_new_image_rolls_into_idle_slots_and_not_into_an_assigned_one(
        warm_pools: Callable, real_engine: DockerEngine, alice: AbstractUser) -> None:
    """The runtime's image changes (a test-only tag of the same image: no shared image is
    touched); the converge rebuilds the idle slots on it, the assigned one keeps its own."""
    import subprocess

    from django.conf import settings

    from pools import services

    def image_of(container_id: str) -> str:
        return subprocess.run(["docker", "inspect", "-f", "{{.Config.Image}}", container_id],
                              capture_output=True, text=True, check=True).stdout.strip()

    slots = warm_pools(nginx=3)["nginx"]
    old = services.runtime_image(Runtime.objects.get(name="nginx"))
    assert {image_of(slot.container_id) for slot in slots} == {old}
    held = deployment_create(user=alice, runtime_name="nginx")
    new = f"paas/nginx:roll-{settings.PAAS_INSTANCE}"
    real_engine.tag_image(old, new)
    try:
        Runtime.objects.filter(name="nginx").update(image=new, step=1)
        for _ in range(2):  # a step of one at a time
            assert services.pool_converge_locked(runtime_name="nginx", wait=True)["rolled"] == 1
        assert services.pool_converge_locked(runtime_name="nginx", wait=True)["rolled"] == 0
        for slot in PoolContainer.objects.filter(runtime__name="nginx"):
            mine = slot.pk == held.slot_id
            assert (slot.status, slot.image) == (("assigned", old) if mine else ("idle", new))
            assert image_of(slot.container_id) == (old if mine else new)
            assert http_get(slot.port)[0] == 200
    finally:
        real_engine.untag_image(new)

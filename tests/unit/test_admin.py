"""The operators' admin on the FakeEngine: every action reports what it did, only staff
get in, and a deactivated or deleted user gives their containers back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from deployments.models import Deployment
from deployments.services import deployment_create
from pools.models import MonitorPass, PoolContainer, Runtime, SlotStatus
from tests.conftest import runtime_form

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
CHANGELIST = "/admin/pools/poolcontainer/"


def action(client: Client, url: str, name: str, ids: list[int], **extra: str) -> str:
    response = client.post(url, {"action": name, "_selected_action": [str(i) for i in ids],
                                 **extra}, follow=True)
    assert response.status_code == 200
    return " | ".join(str(m) for m in response.context["messages"])


def test_index_shows_pool_overview_and_last_pass(operator: Client, warm: Callable) -> None:
    warm("nginx", 2)
    MonitorPass.objects.create(ok=True)
    page = operator.get("/admin/").content.decode()
    assert "Container pools" in page and "Last monitor pass" in page and "ok" in page


def test_container_list_filters_search_and_logs(operator: Client, warm: Callable, alice) -> None:
    slot = warm("nginx", 1)[0]
    deployment_create(user=alice, runtime_name="nginx")
    page = operator.get(CHANGELIST, {"q": "alice"}).content.decode()
    assert f":{slot.port}" in page and "assigned" in page
    assert operator.get(CHANGELIST, {"status__exact": "idle"}).status_code == 200
    logs = operator.get(reverse("admin:pools_poolcontainer_logs", args=[slot.pk]))
    assert "fake log of" in logs.content.decode()


def test_add_containers_page(operator: Client, warm: Callable) -> None:
    warm("nginx", 1)
    url = reverse("admin:pools_poolcontainer_add_containers")
    assert "How many containers" in operator.get(url).content.decode()
    nginx = Runtime.objects.get(name="nginx")
    response = operator.post(url, {"runtime": nginx.pk, "count": 2}, follow=True)
    assert "adding 2 nginx container(s)" in response.content.decode().lower()
    assert PoolContainer.objects.filter(runtime=nginx, status=S.IDLE).count() == 3
    bad = operator.post(url, {"runtime": nginx.pk, "count": 0})
    assert bad.status_code == 200 and PoolContainer.objects.filter(runtime=nginx).count() == 3


def test_reinitialize_and_release_actions_report_done_and_skipped(
        operator: Client, warm: Callable, alice) -> None:
    idle, _ = warm("nginx", 2)
    deployment = deployment_create(user=alice, runtime_name="nginx")
    held = deployment.slot_id
    assert held is not None
    other = idle.pk if idle.pk != held else _.pk
    message = action(operator, CHANGELIST, "release", [held, other])
    assert "released" in message and "(was alice)" in message and "not assigned" in message
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.RELEASED
    assert PoolContainer.objects.get(pk=held).status == S.IDLE
    message = action(operator, CHANGELIST, "reinitialize", [held])
    assert "reinitializing" in message
    # repeating a release is safe and says it skipped
    assert "not assigned" in action(operator, CHANGELIST, "release", [held])


def test_runtime_size_change_grows_in_background_and_shrinks_idle_only(
        operator: Client, warm: Callable, alice) -> None:
    warm("nginx", 2)
    deployment_create(user=alice, runtime_name="nginx")
    nginx = Runtime.objects.get(name="nginx")
    url = reverse("admin:pools_runtime_change", args=[nginx.pk])
    data = runtime_form(nginx, pool_size=0)
    response = operator.post(url, data, follow=True)
    assert "converges to it in the background" in response.content.decode()
    assert list(PoolContainer.objects.filter(runtime=nginx).values_list("status", flat=True)) == [
        S.ASSIGNED]


def test_deactivating_or_deleting_a_user_releases_their_containers(
        warm: Callable, alice, bob) -> None:
    warm("nginx", 3)
    deployment_create(user=alice, runtime_name="nginx")
    deployment_create(user=bob, runtime_name="nginx")
    alice.is_active = False
    alice.save()
    assert not PoolContainer.objects.filter(owner=alice).exists()
    assert Deployment.objects.get(user=alice).status == Deployment.Status.RELEASED
    bob.delete()
    assert PoolContainer.objects.filter(status=S.ASSIGNED).count() == 0
    assert PoolContainer.objects.filter(status=S.IDLE).count() == 3


def test_release_all_for_user_action(operator: Client, warm: Callable, alice) -> None:
    warm("nginx", 2)
    deployment_create(user=alice, runtime_name="nginx")
    deployment_create(user=alice, runtime_name="nginx")
    message = action(operator, "/admin/auth/user/", "release_all", [alice.pk])
    assert "alice: released 2 container(s)" in message
    assert not PoolContainer.objects.filter(owner=alice).exists()


@pytest.mark.parametrize("url", ["/admin/", CHANGELIST, "/admin/pools/runtime/",
                                 "/admin/pools/recovery/", "/admin/deployments/deployment/"])
def test_non_staff_cannot_reach_the_admin(url: str, alice) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    anonymous = Client().get(url)
    assert anonymous.status_code == 302


def test_non_staff_cannot_post_an_action(alice, warm: Callable) -> None:
    slot = warm("nginx", 1)[0]
    client = Client()
    client.force_login(alice)
    client.post(CHANGELIST, {"action": "reinitialize", "_selected_action": [slot.pk]})
    assert PoolContainer.objects.get(pk=slot.pk).generation == slot.generation
    assert get_user_model().objects.filter(is_staff=True).count() == 0

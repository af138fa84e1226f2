"""Claims that wait: with no idle container but one being prepared, a launch gets a
pending deployment that turns running when a slot is ready, first come, first served;
with none coming, 503 with Retry-After. The page says "being prepared" and refreshes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from deployments.models import Deployment
from deployments.services import deployments_serve_all_waiting
from pools import services
from pools.models import PoolContainer, Runtime, SlotStatus

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)


def being_built(count: int = 1) -> list[PoolContainer]:
    """Slots of nginx whose containers are being built (no task runs for them here)."""
    runtime = Runtime.objects.get(name="nginx")
    return [services.slot_create(runtime=runtime) for _ in range(count)]


def built(slot: PoolContainer) -> None:
    """The build finished: the slot turns idle."""
    PoolContainer.objects.filter(pk=slot.pk).update(status=SlotStatus.IDLE,
                                                    container_id=f"c{slot.pk}")


def launch(client: APIClient) -> tuple[int, dict, dict]:
    response = client.post("/api/deployments/", {"runtime": "nginx"}, format="json")
    return response.status_code, response.json(), dict(response.headers)


def status_of(client: APIClient, body: dict) -> dict:
    return client.get(f"/api/deployments/{body['id']}/").json()


def test_a_launch_waits_for_a_container_being_prepared(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    slot = being_built()[0]
    client = api(alice)
    code, body, _ = launch(client)
    assert code == 202
    assert (body["status"], body["port"], body["url"]) == ("pending", None, "")
    assert status_of(client, body)["status"] == "pending"  # still being built
    built(slot)
    ready = status_of(client, body)
    assert (ready["status"], ready["port"]) == ("running", slot.port)
    assert ready["url"].endswith(f":{slot.port}/")
    assert PoolContainer.objects.get(pk=slot.pk).owner_id == alice.pk


def test_waiting_launches_are_served_first_come_first_served(
        alice: AbstractUser, bob: AbstractUser, make_user: Callable[..., AbstractUser],
        api: Callable[..., APIClient]) -> None:
    slots = being_built(2)
    dave = make_user("dave")
    first, second = api(alice), api(bob)
    _, alices, _ = launch(first)
    _, bobs, _ = launch(second)
    built(slots[1])
    # bob polls first, but alice came first: she gets the slot
    assert status_of(second, bobs)["status"] == "pending"
    assert status_of(first, alices)["status"] == "running"
    # a newcomer does not jump the line either, even with a slot idle at that moment
    built(slots[0])
    code, refused, _ = launch(api(dave))  # that slot is bob's: nothing for dave
    assert (code, refused["code"]) == (503, "pool_exhausted")
    assert status_of(second, bobs)["status"] == "running"
    slot = being_built()[0]
    code, daves, _ = launch(api(dave))
    assert (code, daves["status"]) == (202, "pending")
    built(slot)
    assert status_of(api(dave), daves)["status"] == "running"


def test_with_nothing_coming_the_answer_is_503_with_retry_after(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    code, body, headers = launch(api(alice))
    assert (code, body["code"]) == (503, "pool_exhausted")
    assert int(headers["Retry-After"]) > 0
    assert not Deployment.objects.exists()


def test_more_waiting_than_coming_is_503(alice: AbstractUser, bob: AbstractUser,
                                          api: Callable[..., APIClient]) -> None:
    being_built(1)
    assert launch(api(alice))[0] == 202
    code, body, headers = launch(api(bob))
    assert (code, body["code"]) == (503, "pool_exhausted") and "Retry-After" in headers


def test_a_pending_launch_counts_against_the_quota(
        settings: SettingsWrapper, alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    settings.PAAS_USER_QUOTA = 1
    being_built(2)
    assert launch(api(alice))[0] == 202
    code, body, _ = launch(api(alice))
    assert (code, body["code"]) == (429, "quota_exceeded")


def test_a_pending_launch_can_be_cancelled_but_not_used(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    slot = being_built()[0]
    client = api(alice)
    _, body, _ = launch(client)
    response = client.get(f"/api/deployments/{body['id']}/files/")
    assert response.status_code == 409 and response.json()["code"] == "not_ready"
    assert client.delete(f"/api/deployments/{body['id']}/").status_code == 204
    assert status_of(client, body)["ended_reason"] == "user"
    built(slot)
    deployments_serve_all_waiting()
    assert PoolContainer.objects.get(pk=slot.pk).status == SlotStatus.IDLE  # not given away


def test_a_launch_that_waited_too_long_gives_up(
        settings: SettingsWrapper, alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    settings.PAAS_CLAIM_WAIT = 30
    being_built()
    client = api(alice)
    _, body, _ = launch(client)
    Deployment.objects.filter(pk=body["id"]).update(
        created_at=timezone.now() - timedelta(seconds=31))
    after = status_of(client, body)
    assert (after["status"], after["ended_reason"]) == ("released", "not_served")


def test_the_page_says_it_is_being_prepared_and_refreshes(alice: AbstractUser) -> None:
    slot = being_built()[0]
    page = Client()
    page.force_login(alice)  # type: ignore[arg-type]
    response = page.post("/deployments/launch/", {"runtime": "nginx"}, follow=True)
    html = response.content.decode()
    assert "being prepared" in html and 'http-equiv="refresh"' in html
    assert 'id="preparing"' in html
    built(slot)
    deployment = Deployment.objects.get(user=alice)
    html = page.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="preparing"' not in html and f":{slot.port}/" in html


def test_a_finished_build_serves_the_oldest_waiting_launch_at_once(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    slot = being_built()[0]
    _, body, _ = launch(api(alice))
    assert services.slot_rebuild(slot_id=slot.pk, generation=slot.generation)
    # no poll: the build's end handed the slot over
    deployment = Deployment.objects.get(pk=body["id"])
    assert (deployment.status, deployment.slot_id) == ("active", slot.pk)


def test_no_waiting_when_claim_wait_is_zero(settings: SettingsWrapper, alice: AbstractUser,
                                            api: Callable[..., APIClient]) -> None:
    settings.PAAS_CLAIM_WAIT = 0
    being_built()
    code, body, headers = launch(api(alice))
    assert (code, body["code"]) == (503, "pool_exhausted") and "Retry-After" in headers

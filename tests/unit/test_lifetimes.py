"""Lifetimes: deployments past their maximum age or idle timeout are released by the
cull with the reason in their history; use (user actions, requests reaching the
container beyond our own probes) keeps them; users are warned and may extend once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Quota
from deployments import lifetimes
from deployments.models import Deployment
from pools.models import MonitorPass, PoolContainer, Runtime, SlotStatus
from tests.fakes import FakeEngine

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)


def policy(**values: object) -> None:
    Runtime.objects.filter(name="nginx").update(**values)


@pytest.fixture
def running(alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> Deployment:
    """alice's running nginx deployment, launched through the API."""
    warm("nginx", 2)
    response = api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 201
    return Deployment.objects.get(pk=response.json()["id"])


def age(deployment: Deployment, *, launched: int = 0, used: int = 0,
        checked: int | None = None) -> None:
    """Move the deployment's clocks ``launched``/``used``/``checked`` seconds back."""
    now = timezone.now()
    Deployment.objects.filter(pk=deployment.pk).update(
        created_at=now - timedelta(seconds=launched),
        last_activity_at=now - timedelta(seconds=used),
        net_checked_at=None if checked is None else now - timedelta(seconds=checked))


def state(deployment: Deployment) -> tuple[str, str]:
    deployment.refresh_from_db()
    return deployment.status, deployment.ended_reason


# --- off by default ---------------------------------------------------------------------
def test_lifetimes_are_off_by_default(running: Deployment, api: Callable[..., APIClient],
                                      alice: AbstractUser) -> None:
    age(running, launched=10**6, used=10**6)
    assert lifetimes.deployments_cull() == {"max_age": 0, "idle_timeout": 0}
    assert state(running) == ("active", "")
    assert api(alice).get(f"/api/deployments/{running.pk}/").json()["expires_at"] is None


# --- max age --------------------------------------------------------------------------------
def test_max_age_releases_regardless_of_use(running: Deployment, fake_engine: FakeEngine) -> None:
    policy(max_age=3600)
    age(running, launched=3599, used=0)
    lifetimes.deployments_cull()
    assert state(running) == ("active", "")
    age(running, launched=3601, used=0)
    assert lifetimes.deployments_cull() == {"max_age": 1, "idle_timeout": 0}
    assert state(running) == ("released", "max_age")
    slot = PoolContainer.objects.get(pk=running.slot_id)
    # released like a user's release: the slot was recycled for the next user
    assert slot.owner_id is None and slot.status == SlotStatus.IDLE


# --- idle timeout ----------------------------------------------------------------------------
def test_idle_timeout_releases_an_unused_deployment(running: Deployment) -> None:
    policy(idle_timeout=1800)
    age(running, used=1801)
    lifetimes.deployments_cull()
    assert state(running) == ("released", "idle_timeout")


def test_requests_reaching_the_container_keep_it(running: Deployment,
                                                 fake_engine: FakeEngine) -> None:
    policy(idle_timeout=1800)
    container = PoolContainer.objects.get(pk=running.slot_id).container_id
    fake_engine.rx_bytes[container] = 1000
    lifetimes.deployments_cull()  # the first look sets the baseline
    age(running, used=1801, checked=60)
    fake_engine.rx_bytes[container] = 1000 + 5000  # a few page views
    lifetimes.deployments_cull()
    assert state(running) == ("active", "")
    running.refresh_from_db()
    assert (timezone.now() - running.last_activity_at).total_seconds() < 5


def test_our_own_probes_and_background_chatter_are_not_use(running: Deployment,
                                                         fake_engine: FakeEngine) -> None:
    policy(idle_timeout=1800)
    container = PoolContainer.objects.get(pk=running.slot_id).container_id
    fake_engine.rx_bytes[container] = 1000
    lifetimes.deployments_cull()
    age(running, used=1801, checked=120)
    MonitorPass.objects.create()  # one reconcile pass probed the port (twice at most)
    fake_engine.rx_bytes[container] = 1000 + 2 * 500 + 250  # two probes and some chatter
    lifetimes.deployments_cull()
    assert state(running) == ("released", "idle_timeout")


def test_a_replaced_container_is_a_new_baseline_not_use(running: Deployment,
                                                        fake_engine: FakeEngine) -> None:
    policy(idle_timeout=1800)
    container = PoolContainer.objects.get(pk=running.slot_id).container_id
    fake_engine.rx_bytes[container] = 50_000
    lifetimes.deployments_cull()
    age(running, used=1801, checked=60)
    fake_engine.rx_bytes[container] = 10  # its counter started again
    lifetimes.deployments_cull()
    assert state(running) == ("released", "idle_timeout")


def test_user_actions_are_use(running: Deployment, alice: AbstractUser,
                              api: Callable[..., APIClient]) -> None:
    policy(idle_timeout=1800)
    age(running, used=1801)
    assert api(alice).get(f"/api/deployments/{running.pk}/logs/").status_code == 200
    lifetimes.deployments_cull()
    assert state(running) == ("active", "")


def test_staff_override_a_users_lifetimes(running: Deployment, alice: AbstractUser) -> None:
    policy(idle_timeout=1800, max_age=3600)
    Quota.objects.create(user=alice, idle_timeout=0, max_age=0)  # 0: never for alice
    age(running, launched=10**6, used=10**6)
    lifetimes.deployments_cull()
    assert state(running) == ("active", "")
    Quota.objects.filter(user=alice).update(idle_timeout=60, max_age=None)
    age(running, launched=10, used=61)
    lifetimes.deployments_cull()
    assert state(running) == ("released", "idle_timeout")


# --- warning, expires_at and extending --------------------------------------------------------
def test_the_api_says_when_and_the_page_warns(running: Deployment, alice: AbstractUser,
                                              api: Callable[..., APIClient]) -> None:
    policy(max_age=3600, lifetime_extension=1800)
    age(running, launched=3600 - 300)
    body = api(alice).get(f"/api/deployments/{running.pk}/").json()
    running.refresh_from_db()
    expected = running.created_at + timedelta(seconds=3600)
    assert body["expires_at"] == expected.isoformat().replace("+00:00", "Z")
    page = Client()
    page.force_login(alice)  # type: ignore[arg-type]
    html = page.get(f"/deployments/{running.pk}/").content.decode()
    assert 'id="expiry-warning"' in html and "Extend (once)" in html


def test_no_warning_long_before_expiry(running: Deployment, alice: AbstractUser) -> None:
    policy(max_age=86400)
    page = Client()
    page.force_login(alice)  # type: ignore[arg-type]
    assert 'id="expiry-warning"' not in page.get(f"/deployments/{running.pk}/").content.decode()


def test_a_user_extends_once(running: Deployment, alice: AbstractUser,
                             api: Callable[..., APIClient]) -> None:
    policy(max_age=3600, lifetime_extension=1800)
    age(running, launched=3500)
    response = api(alice).post(f"/api/deployments/{running.pk}/extend/")
    assert response.status_code == 200
    age(running, launched=3601)  # past max age, but within the extension
    lifetimes.deployments_cull()
    assert state(running) == ("active", "")
    again = api(alice).post(f"/api/deployments/{running.pk}/extend/")
    assert again.status_code == 409 and again.json()["code"] == "extend_refused"
    age(running, launched=3600 + 1801)
    lifetimes.deployments_cull()
    assert state(running) == ("released", "max_age")


def test_no_extension_unless_the_policy_allows(running: Deployment, alice: AbstractUser,
                                               api: Callable[..., APIClient],
                                               bob: AbstractUser) -> None:
    policy(max_age=3600)
    response = api(alice).post(f"/api/deployments/{running.pk}/extend/")
    assert response.status_code == 409 and "cannot be extended" in response.json()["detail"]
    assert Deployment.objects.get(pk=running.pk).extended_at is None
    policy(max_age=3600, lifetime_extension=600)
    assert api(bob).post(f"/api/deployments/{running.pk}/extend/").status_code == 404


def test_the_page_extends(running: Deployment, alice: AbstractUser) -> None:
    policy(max_age=3600, lifetime_extension=600)
    page = Client()
    page.force_login(alice)  # type: ignore[arg-type]
    response = page.post(f"/deployments/{running.pk}/extend/", follow=True)
    assert "Extended" in response.content.decode()
    assert Deployment.objects.get(pk=running.pk).extended_at is not None


# --- the history says why ------------------------------------------------------------------
def test_every_end_records_its_reason(running: Deployment, alice: AbstractUser,
                                      api: Callable[..., APIClient]) -> None:
    assert api(alice).delete(f"/api/deployments/{running.pk}/").status_code == 204
    assert state(running) == ("released", "user")
    body = api(alice).get(f"/api/deployments/{running.pk}/").json()
    assert body["ended_reason"] == "user" and body["expires_at"] is None


def test_the_cull_is_scheduled_every_minute() -> None:
    from django_q.models import Schedule

    lifetimes.cull_schedule_install()
    schedule = Schedule.objects.get(name="paas-cull")
    assert (schedule.func, schedule.minutes) == ("deployments.tasks.cull", 1)


def test_operators_see_when_each_deployment_expires(running: Deployment, operator: Client) -> None:
    url = "/admin/deployments/deployment/"
    assert 'class="field-expires">-</td>' in operator.get(url).content.decode()  # off
    policy(max_age=3600)
    page = operator.get(url).content.decode()
    assert "column-expires" in page and 'class="field-expires">-</td>' not in page

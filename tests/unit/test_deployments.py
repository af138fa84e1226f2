"""Deployment services on the FakeEngine: launch (quota, exhaustion), content, logs,
restart, release by the user and by an operator, and what the user sees."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings

from accounts.models import Quota
from deployments import selectors, services
from deployments.errors import QuotaExceeded, Released
from deployments.models import Deployment
from pools import content
from pools import services as pool_services
from pools.errors import InvalidInput, NotFound, PoolExhausted, UnknownRuntime
from pools.models import PoolContainer, Recovery, Runtime, SlotStatus
from tests.fakes import FakeEngine

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
NGINX_ROOT = "/usr/share/nginx/html"


def files(name: str, data: bytes) -> list[tuple[str, io.BytesIO]]:
    return [(name, io.BytesIO(data))]


def test_create_claims_an_idle_slot_without_docker(
        alice: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    warm("nginx", 2)
    containers = dict(fake_engine.containers)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    assert (slot.status, slot.owner_id) == (S.ASSIGNED, alice.pk)
    assert (deployment.runtime_name, deployment.port) == ("nginx", slot.port)
    assert deployment.state == "running" and deployment.is_active
    assert fake_engine.containers == containers  # nothing created or removed


def test_create_unknown_or_disabled_runtime_changes_nothing(
        alice: AbstractUser, warm: Callable) -> None:
    warm("nginx", 1)
    with pytest.raises(UnknownRuntime) as error:
        services.deployment_create(user=alice, runtime_name="cobol")
    assert error.value.fields == {"runtime": ["unknown runtime 'cobol'"]}
    Runtime.objects.filter(name="nginx").update(enabled=False)
    with pytest.raises(InvalidInput):
        services.deployment_create(user=alice, runtime_name="nginx")
    assert not Deployment.objects.exists()
    assert PoolContainer.objects.get().status == S.IDLE


def test_pool_exhausted_leaves_no_deployment(
        alice: AbstractUser, bob: AbstractUser, warm: Callable) -> None:
    warm("nginx", 1)
    services.deployment_create(user=alice, runtime_name="nginx")
    with pytest.raises(PoolExhausted):
        services.deployment_create(user=bob, runtime_name="nginx")
    assert not Deployment.objects.filter(user=bob).exists()


def test_quota_counts_active_deployments_only(
        settings: Settings, alice: AbstractUser, warm: Callable) -> None:
    settings.PAAS_USER_QUOTA = 1
    warm("nginx", 3)
    first = services.deployment_create(user=alice, runtime_name="nginx")
    with pytest.raises(QuotaExceeded):
        services.deployment_create(user=alice, runtime_name="nginx")
    assert PoolContainer.objects.filter(status=S.IDLE).count() == 2  # claim rolled back
    services.deployment_release(deployment=first)
    services.deployment_create(user=alice, runtime_name="nginx")


@pytest.mark.vendor
def test_concurrent_launches_of_one_user_stop_at_the_quota(
        settings: Settings, alice: AbstractUser, warm: Callable) -> None:
    """Twelve launches at once by one user with quota 2: the quota check and the claim
    are serialized per user (a row lock on PostgreSQL, the one writer on SQLite)."""
    settings.PAAS_USER_QUOTA = 2
    warm("nginx", 8)
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def launch() -> None:
        try:
            barrier.wait()
            services.deployment_create(user=alice, runtime_name="nginx")
            outcomes.append("launched")
        except QuotaExceeded:
            outcomes.append("quota")
        except BaseException as exc:  # any other error fails the test
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=launch) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["launched"] * 2 + ["quota"] * 10
    assert Deployment.objects.filter(user=alice, status=Deployment.Status.ACTIVE).count() == 2
    assert PoolContainer.objects.filter(status=S.ASSIGNED).count() == 2


def test_per_user_quota_overrides_the_default(
        alice: AbstractUser, bob: AbstractUser, warm: Callable) -> None:
    warm("nginx", 3)
    Quota.objects.create(user=alice, max_deployments=0)
    with pytest.raises(QuotaExceeded):
        services.deployment_create(user=alice, runtime_name="nginx")
    Quota.objects.filter(user=alice).update(max_deployments=2)
    services.deployment_create(user=alice, runtime_name="nginx")
    services.deployment_create(user=alice, runtime_name="nginx")
    with pytest.raises(QuotaExceeded):
        services.deployment_create(user=alice, runtime_name="nginx")
    services.deployment_create(user=bob, runtime_name="nginx")  # bob has the default


def test_upload_stores_and_pushes_into_the_container(
        alice: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    warm("nginx", 1)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    stored = services.deployment_upload(deployment=deployment,
                                        uploads=files("index.html", b"<h1>hi</h1>"), path="site")
    assert stored == ["site/index.html"]
    assert services.deployment_files(deployment=deployment) == [
        {"path": "site/index.html", "size": 11}]
    container = PoolContainer.objects.get().container_id
    assert fake_engine.files[container] == {f"{NGINX_ROOT}/site/index.html": b"<h1>hi</h1>"}
    services.deployment_file_delete(deployment=deployment, path="site/index.html")
    assert fake_engine.files[container] == {}
    with pytest.raises(NotFound):
        services.deployment_file_delete(deployment=deployment, path="site/index.html")


def test_upload_to_an_app_runtime_restarts_the_app(
        alice: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    warm("python", 1)
    deployment = services.deployment_create(user=alice, runtime_name="python")
    services.deployment_upload(deployment=deployment, uploads=files("app.py", b"print(1)"))
    container = PoolContainer.objects.get().container_id
    assert fake_engine.files[container] == {"/app/app.py": b"print(1)"}
    assert (container, "SIGHUP") in fake_engine.signals


def test_upload_while_recovering_lands_in_the_store_only(
        alice: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    warm("nginx", 1)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    PoolContainer.objects.update(status=S.RECOVERING)
    services.deployment_upload(deployment=deployment, uploads=files("a.txt", b"a"))
    slot = PoolContainer.objects.get()
    assert fake_engine.files[slot.container_id] == {}
    assert content.content_list(slot_id=slot.pk) == [{"path": "a.txt", "size": 1}]
    assert Deployment.objects.select_related("slot").get().state == "recovering"
    assert services.deployment_logs(deployment=deployment) == []
    assert services.deployment_restart(deployment=deployment) is False


def test_logs_and_restart(alice: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    warm("nginx", 1)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    container = PoolContainer.objects.get().container_id
    assert services.deployment_logs(deployment=deployment, tail=5) == [
        f"fake log of {container}"]
    assert services.deployment_restart(deployment=deployment) is True
    assert fake_engine.signals[-1] == (container, "SIGHUP")


def test_release_recycles_the_slot_and_deletes_the_files(
        alice: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    warm("nginx", 1)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    services.deployment_upload(deployment=deployment, uploads=files("index.html", b"mine"))
    old = PoolContainer.objects.get()
    assert services.deployment_release(deployment=deployment) is True
    slot = PoolContainer.objects.get()
    assert (slot.status, slot.owner_id) == (S.IDLE, None)
    assert slot.container_id != old.container_id and old.container_id not in fake_engine.containers
    assert fake_engine.files[slot.container_id] == {}
    assert content.content_list(slot_id=slot.pk) == []
    assert (deployment.status, deployment.state) == ("released", "released")
    assert deployment.released_at is not None
    # history keeps runtime and port; a second release changes nothing
    assert services.deployment_release(deployment=deployment) is False
    assert PoolContainer.objects.get().generation == slot.generation


@pytest.mark.parametrize("action", [
    lambda d: services.deployment_upload(deployment=d, uploads=files("a", b"a")),
    lambda d: services.deployment_files(deployment=d),
    lambda d: services.deployment_file_delete(deployment=d, path="a"),
    lambda d: services.deployment_logs(deployment=d),
    lambda d: services.deployment_restart(deployment=d),
])
def test_every_action_on_a_released_deployment_is_released(
        alice: AbstractUser, warm: Callable, action: Callable) -> None:
    warm("nginx", 1)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    services.deployment_release(deployment=deployment)
    with pytest.raises(Released):
        action(deployment)


def test_a_slot_taken_away_behind_the_deployments_back_ends_it(
        alice: AbstractUser, bob: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    """A slot released directly in pools (not through us) and handed to bob: alice's
    stale deployment must not reach bob's container, and stops counting for her quota."""
    warm("nginx", 1)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    pool_services.slot_release(slot=PoolContainer.objects.get())
    services.deployment_create(user=bob, runtime_name="nginx")
    with pytest.raises(Released):
        services.deployment_upload(deployment=deployment, uploads=files("x.html", b"alice"))
    slot = PoolContainer.objects.get()
    assert fake_engine.files[slot.container_id] == {}
    assert content.content_list(slot_id=slot.pk) == []
    assert Deployment.objects.get(pk=deployment.pk).status == "released"


def test_operator_release_of_a_slot_ends_its_deployment(
        alice: AbstractUser, warm: Callable) -> None:
    warm("nginx", 2)
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    assert services.slot_release_by_operator(slot=slot) is True
    deployment.refresh_from_db()
    assert deployment.status == "released"
    assert PoolContainer.objects.get(pk=slot.pk).status == S.IDLE
    idle = PoolContainer.objects.exclude(pk=slot.pk).get()
    assert services.slot_release_by_operator(slot=idle) is False  # not assigned


def test_operator_release_of_a_slot_without_deployment(
        alice: AbstractUser, warm: Callable) -> None:
    warm("nginx", 1)
    slot = pool_services.slot_claim(runtime=Runtime.objects.get(name="nginx"), user=alice)
    assert services.slot_release_by_operator(slot=slot) is True
    assert PoolContainer.objects.get().status == S.IDLE


def test_release_everything_a_user_holds(
        alice: AbstractUser, bob: AbstractUser, warm: Callable) -> None:
    warm("nginx", 3)
    services.deployment_create(user=alice, runtime_name="nginx")
    services.deployment_create(user=alice, runtime_name="nginx")
    kept = services.deployment_create(user=bob, runtime_name="nginx")
    assert services.deployments_release_for_user(user=alice) == 2
    assert not Deployment.objects.filter(user=alice, status="active").exists()
    assert PoolContainer.objects.filter(owner=alice).count() == 0
    assert Deployment.objects.get(pk=kept.pk).state == "running"
    assert services.deployments_release_for_user(user=alice) == 0


def test_selectors_hide_other_users_deployments(
        alice: AbstractUser, bob: AbstractUser, warm: Callable) -> None:
    warm("nginx", 2)
    mine = services.deployment_create(user=alice, runtime_name="nginx")
    assert selectors.deployment_get_for_user(user=alice, deployment_id=mine.pk) == mine
    with pytest.raises(NotFound):
        selectors.deployment_get_for_user(user=bob, deployment_id=mine.pk)
    assert list(selectors.deployments_for_user(user=bob)) == []


def test_state_follows_the_slot(alice: AbstractUser, warm: Callable) -> None:
    warm("nginx", 1)
    services.deployment_create(user=alice, runtime_name="nginx")
    for slot_status, state in [(S.RECOVERING, "recovering"), (S.FAILED, "failed"),
                               (S.ASSIGNED, "running")]:
        PoolContainer.objects.update(status=slot_status)
        assert Deployment.objects.select_related("slot").get().state == state


def test_last_recovery_is_the_latest_while_it_was_mine(
        alice: AbstractUser, bob: AbstractUser, warm: Callable) -> None:
    warm("nginx", 1)
    slot = PoolContainer.objects.get()
    Recovery.objects.create(slot=slot, owner=bob, runtime_name="nginx", port=slot.port,
                            generation=50, reason="before alice")
    deployment = services.deployment_create(user=alice, runtime_name="nginx")
    assert selectors.deployment_last_recovery(deployment=deployment) is None
    Recovery.objects.create(slot=slot, owner=alice, runtime_name="nginx", port=slot.port,
                            generation=51, reason="container exited (137)",
                            started_at=timezone.now())
    recovery = selectors.deployment_last_recovery(deployment=deployment)
    assert recovery is not None and recovery.reason == "container exited (137)"


@pytest.mark.parametrize("public_host, request_host, url", [
    ("", "paas.example.com:5000", "http://paas.example.com:{port}/"),
    ("", "10.0.0.5", "http://10.0.0.5:{port}/"),
    ("", "[::1]:5000", "http://[::1]:{port}/"),
    ("apps.example.org", "localhost:5000", "http://apps.example.org:{port}/"),
])
def test_url_uses_the_public_host_or_the_request_host(
        settings: Settings, public_host: str, request_host: str, url: str) -> None:
    settings.PAAS_PUBLIC_HOST = public_host
    deployment = Deployment(port=8003)
    assert selectors.deployment_url(deployment=deployment, request_host=request_host) == \
        url.format(port=8003)

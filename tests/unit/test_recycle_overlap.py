"""Issue 15's overlapped rebuild, on the FakeEngine (which refuses a second running
container on one host port, as Docker does): the old container is only stopped before
the new one starts, and removed once the slot has settled; a task that dies in between
leaves nothing behind after the reconcile pass."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from deployments import services as deployments
from pools import monitor, services
from pools.engine import ContainerSpec
from pools.invariants import invariants_check
from pools.models import PoolContainer, Recovery, Runtime, SlotStatus
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
NGINX_ROOT = "/usr/share/nginx/html"


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path / "content"
    monkeypatch.setattr(monitor, "CONFIRM_DELAY", 0)


@pytest.fixture
def one_slot(warm: Callable) -> PoolContainer:
    Runtime.objects.exclude(name="nginx").update(pool_size=0)
    Runtime.objects.filter(name="nginx").update(pool_size=1)
    return warm("nginx", 1)[0]


def calls_recorded(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every stop, create and remove, with the slot's status at that moment."""
    calls: list[tuple] = []

    def status() -> str:
        return str(PoolContainer.objects.values_list("status", flat=True).first())

    for name in ("stop", "create", "remove"):
        real = getattr(engine, name)

        def recorded(arg: Any, _real: Callable = real, _name: str = name) -> Any:
            calls.append((_name, arg.name if isinstance(arg, ContainerSpec) else arg,
                          status()))
            return _real(arg)

        monkeypatch.setattr(engine, name, recorded)
    return calls


def test_release_stops_the_old_container_first_and_removes_it_once_idle(
        fake_engine: FakeEngine, one_slot: PoolContainer, alice: Any, bob: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = deployments.deployment_create(user=alice, runtime_name="nginx")
    deployments.deployment_upload(deployment=first,
                                  uploads=[("secret.html", io.BytesIO(b"alice's"))])
    old = PoolContainer.objects.get(pk=one_slot.pk).container_id
    calls = calls_recorded(fake_engine, monkeypatch)

    deployments.deployment_release(deployment=first)

    slot = PoolContainer.objects.get(pk=one_slot.pk)
    assert slot.status == S.IDLE and slot.container_id != old
    assert [c[0] for c in calls] == ["stop", "create", "remove"]
    assert calls[0][1] == old and calls[2][1] == old
    assert calls[1][1] == slot.container_name and calls[1][2] == S.RECYCLING
    assert calls[2][2] == S.IDLE  # removed after the slot turned idle, not before
    assert [c.id for c in fake_engine.list_managed(django_settings.PAAS_INSTANCE)] == [
        slot.container_id]
    # The next user gets a fresh, empty container.
    second = deployments.deployment_create(user=bob, runtime_name="nginx")
    assert second.slot_id == slot.pk and fake_engine.files[slot.container_id] == {}
    assert invariants_check() == []


def _launch_with_a_file(user: Any) -> None:
    """The user launches nginx and uploads index.html (the files a recovery must keep)."""
    deployment = deployments.deployment_create(user=user, runtime_name="nginx")
    deployments.deployment_upload(deployment=deployment,
                                  uploads=[("index.html", io.BytesIO(b"mine"))])


def test_recovery_serves_the_files_before_the_dead_container_is_removed(
        fake_engine: FakeEngine, one_slot: PoolContainer, alice: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _launch_with_a_file(alice)
    dead = PoolContainer.objects.get(pk=one_slot.pk).container_id
    fake_engine.kill(dead)
    pushed_before_removal: list[bool] = []
    real_remove = fake_engine.remove

    def remove(container_id: str) -> None:
        new = PoolContainer.objects.get(pk=one_slot.pk).container_id
        pushed_before_removal.append(new != container_id and (
            fake_engine.files[new] == {f"{NGINX_ROOT}/index.html": b"mine"}))
        real_remove(container_id)

    monkeypatch.setattr(fake_engine, "remove", remove)
    assert services.slot_recover(slot=PoolContainer.objects.get(pk=one_slot.pk),
                                 reason="container die", trigger="watch")
    slot = PoolContainer.objects.get(pk=one_slot.pk)
    assert slot.status == S.ASSIGNED and slot.container_id != dead
    assert pushed_before_removal == [True]
    assert dead not in fake_engine.containers
    assert invariants_check() == []


def test_a_task_that_dies_before_the_removal_leaves_nothing_after_the_pass(
        fake_engine: FakeEngine, one_slot: PoolContainer, alice: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    old = PoolContainer.objects.get(pk=one_slot.pk).container_id

    class WorkerKilled(BaseException):
        """The task's process ends here (SIGKILL): nothing after this point runs."""

    def killed(slot: PoolContainer) -> None:
        raise WorkerKilled

    monkeypatch.setattr(services, "_stale_remove_safely", killed)
    with pytest.raises(WorkerKilled):
        deployments.deployment_release(deployment=deployment)
    slot = PoolContainer.objects.get(pk=one_slot.pk)
    assert slot.status == S.IDLE
    assert fake_engine.containers[old].status == "exited"  # stopped, left behind
    assert any("2 containers" in p for p in invariants_check())

    monkeypatch.undo()
    result = monitor.reconcile_pass()
    assert result["ok"] and result["orphans_removed"] == 1
    assert old not in fake_engine.containers
    assert [c.id for c in fake_engine.list_managed(django_settings.PAAS_INSTANCE)] == [
        slot.container_id]
    assert invariants_check() == []


def test_a_lost_builds_container_on_the_port_is_removed_and_the_start_retried(
        fake_engine: FakeEngine, one_slot: PoolContainer, alice: Any) -> None:
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    slot = PoolContainer.objects.get(pk=one_slot.pk)
    # A build of an earlier generation that started its container and then died: the
    # slot never recorded it, and it holds the port.
    fake_engine.stop(slot.container_id)
    lost = services.slot_spec(slot)
    lost.name += "-lost"
    lost.labels = {**lost.labels, "paas.generation": str(slot.generation)}
    lost_id = fake_engine.create(lost).id

    deployments.deployment_release(deployment=deployment)

    slot = PoolContainer.objects.get(pk=one_slot.pk)
    assert slot.status == S.IDLE and fake_engine.containers[slot.container_id].running
    assert lost_id not in fake_engine.containers
    assert [c.id for c in fake_engine.list_managed(django_settings.PAAS_INSTANCE)] == [
        slot.container_id]


def test_the_removal_never_touches_a_newer_generations_container(
        fake_engine: FakeEngine, one_slot: PoolContainer) -> None:
    slot = PoolContainer.objects.get(pk=one_slot.pk)
    newer = services.slot_spec(slot)
    newer.name += "-newer"
    newer.host_port += 1
    newer.labels = {**newer.labels, "paas.generation": str(slot.generation + 1)}
    newer_id = fake_engine.create(newer).id
    older = services.slot_spec(slot)
    older.name += "-older"
    older.host_port += 2
    older.labels = {**older.labels, "paas.generation": str(slot.generation - 1)}
    older_id = fake_engine.create(older).id

    services._stale_remove(slot)

    assert newer_id in fake_engine.containers and older_id not in fake_engine.containers
    assert slot.container_id in fake_engine.containers


def test_a_recovery_is_recorded_finished_only_once_the_files_are_pushed(
        fake_engine: FakeEngine, one_slot: PoolContainer, alice: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _launch_with_a_file(alice)
    fake_engine.kill(PoolContainer.objects.get(pk=one_slot.pk).container_id)
    outcome_at_push: list[str] = []
    real_push = services.content_push

    def push(*, slot: PoolContainer, container_id: str) -> None:
        outcome_at_push.append(Recovery.objects.get(slot_id=slot.pk).outcome)
        real_push(slot=slot, container_id=container_id)

    monkeypatch.setattr(services, "content_push", push)
    assert services.slot_recover(slot=PoolContainer.objects.get(pk=one_slot.pk),
                                 reason="container die", trigger="watch")
    assert outcome_at_push == [Recovery.Outcome.RUNNING]
    assert Recovery.objects.get(slot_id=one_slot.pk).outcome == Recovery.Outcome.SUCCEEDED


def test_the_readiness_wait_of_a_recovered_app_asks_docker_at_once(
        fake_engine: FakeEngine, warm: Callable, alice: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An assigned python slot only has to run (its app is the user's business): the
    first look at the container comes without a pause, while a web server's port is
    probed first and Docker asked only if it does not answer."""
    Runtime.objects.exclude(name="python").update(pool_size=0)
    Runtime.objects.filter(name="python").update(pool_size=1)
    slot = warm("python", 1)[0]
    deployments.deployment_create(user=alice, runtime_name="python")
    slot = PoolContainer.objects.select_related("runtime").get(pk=slot.pk)
    pauses: list[float] = []
    monkeypatch.setattr(services.time, "sleep", pauses.append)
    PoolContainer.objects.filter(pk=slot.pk).update(status=S.RECOVERING)
    slot.refresh_from_db()
    assert services._wait_ready(slot, fake_engine.containers[slot.container_id]) == ""
    assert pauses == []

"""Issue 11's defects 1-8 and issue 17's product check, each reproduced on the FakeEngine.

Every test here failed on the code before the state machine landed; it pins the fix."""

from __future__ import annotations

import ast
import io
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from deployments import services as deployments
from pools import content, monitor, services
from pools.engine import ContainerInfo, ContainerSpec
from pools.errors import EngineError, PoolExhausted
from pools.models import MonitorPass, PoolContainer, Runtime, SlotStatus
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
NGINX_ROOT = "/usr/share/nginx/html"


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path / "content"


@pytest.fixture(autouse=True)
def no_confirm_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "CONFIRM_DELAY", 0)


def only_pool(name: str, size: int) -> None:
    Runtime.objects.exclude(name=name).update(pool_size=0)
    Runtime.objects.filter(name=name).update(pool_size=size)


def upload(deployment: Any, name: str, data: bytes) -> None:
    deployments.deployment_upload(deployment=deployment, uploads=[(name, io.BytesIO(data))])


def slot_of(deployment: Any) -> int:
    assert deployment.slot_id is not None
    return int(deployment.slot_id)


def container_files(engine: FakeEngine, slot_id: int) -> dict[str, bytes]:
    slot = PoolContainer.objects.get(pk=slot_id)
    return engine.files.get(slot.container_id, {})


def fail_until_failed(slot_id: int) -> PoolContainer:
    """Let the slot's rebuild fail (and be retried) until it gives up."""
    for _ in range(services.MAX_FAILURES + 2):
        slot = PoolContainer.objects.select_related("runtime").get(pk=slot_id)
        if slot.status == S.FAILED:
            return slot
        services.slot_retry(slot=slot)
    return PoolContainer.objects.get(pk=slot_id)


# --- 1. no cross-user leak on a failed recycle -------------------------------------------
def test_failed_recycle_then_reinitialize_never_hands_files_to_the_next_user(
        fake_engine: FakeEngine, warm: Callable, alice: Any, bob: Any) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)
    first = deployments.deployment_create(user=alice, runtime_name="nginx")
    upload(first, "secret.html", b"alice's secret")

    fake_engine.fail_create = True  # every rebuild of the released slot fails
    deployments.deployment_release(deployment=first)
    slot = fail_until_failed(slot_of(first))
    fake_engine.fail_create = False
    assert slot.status == S.FAILED and slot.owner_id is None

    assert services.slot_reinitialize(slot=slot)
    assert PoolContainer.objects.get(pk=slot.pk).status == S.IDLE
    second = deployments.deployment_create(user=bob, runtime_name="nginx")
    assert second.slot_id == slot.pk
    upload(second, "bob.html", b"bob")
    assert deployments.deployment_files(deployment=second) == [{"path": "bob.html", "size": 3}]
    assert container_files(fake_engine, slot.pk) == {f"{NGINX_ROOT}/bob.html": b"bob"}


# --- 2. one builder per (slot, generation) ------------------------------------------------
def test_pool_reinit_never_runs_two_builders_for_one_slot(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, settings: Any,
        warm: Callable) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)
    settings.PAAS_TASKS_INLINE = False
    queued: list[tuple[str, tuple[Any, ...]]] = []
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task",
                        lambda func, *args, **kw: queued.append((func, args)))
    real_create = fake_engine.create

    def create_racing_the_worker(spec: ContainerSpec) -> ContainerInfo:
        # The worker picks up whatever was queued while the command builds the same slot.
        while queued:
            func, args = queued.pop(0)
            services._call_task(func, *args)
        return real_create(spec)

    monkeypatch.setattr(fake_engine, "create", create_racing_the_worker)
    call_command("pool", "reinit", "nginx", stdout=io.StringIO())
    for func, args in queued:
        services._call_task(func, *args)
    slot = PoolContainer.objects.get()
    assert slot.status == S.IDLE
    assert slot.container_id in fake_engine.containers  # the idle slot has its container
    assert len(fake_engine.list_managed(settings.PAAS_INSTANCE, slot=str(slot.pk))) == 1


def test_a_second_builder_of_the_same_generation_does_nothing(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    created: list[str] = []
    real_create = fake_engine.create
    second: list[bool] = []

    def create(spec: ContainerSpec) -> ContainerInfo:
        created.append(spec.name)
        if len(created) == 1:  # a second run of the same task while the first builds
            second.append(services.slot_rebuild(slot_id=slot.pk, generation=slot.generation + 1))
        return real_create(spec)

    monkeypatch.setattr(fake_engine, "create", create)
    assert services.slot_reinitialize(slot=slot)
    assert second == [False] and len(created) == 1
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.container_id in fake_engine.containers


def test_a_task_redelivered_after_its_worker_died_finishes_the_build(
        fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    assert services.slot_reinitialize(slot=slot, queue=False)
    generation = slot.generation
    # a worker claimed the build and was killed before it finished
    PoolContainer.objects.filter(pk=slot.pk).update(
        build_generation=generation, build_started_at=timezone.now())
    assert not services.slot_rebuild(slot_id=slot.pk, generation=generation)
    timeout = services.settings.Q_CLUSTER["timeout"]
    PoolContainer.objects.filter(pk=slot.pk).update(
        build_started_at=timezone.now() - timedelta(seconds=timeout + 1))
    assert services.slot_rebuild(slot_id=slot.pk, generation=generation)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.generation == generation


# --- 3. every failure is recorded --------------------------------------------------------
def test_runtime_without_an_image_ends_failed_with_the_reason(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from pools.imagebuild import image_tag

    monkeypatch.setattr(services, "runtime_image",
                        lambda runtime: runtime.image or image_tag(runtime.name))
    only_pool("nginx", 0)
    Runtime.objects.create(name="ruby", internal_port=80, content_root="/srv",
                           port_min=39000, port_max=39009, pool_size=1)
    services.pool_add(runtime_name="ruby", count=1, wait=True)  # must not raise
    slot = PoolContainer.objects.get(runtime__name="ruby")
    assert slot.status == S.FAILED
    assert "ruby" in slot.last_error and "image" in slot.last_error
    out = io.StringIO()
    call_command("pool", "status", stdout=out)
    assert "ruby" in out.getvalue() and "failed" in out.getvalue()
    assert slot.last_error in out.getvalue()


def test_os_error_while_clearing_content_is_recorded(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, warm: Callable,
        alice: Any) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")

    def broken_clear(*, slot_id: int) -> None:
        raise OSError(13, "Permission denied", "content/1")

    monkeypatch.setattr(content, "content_clear", broken_clear)
    deployments.deployment_release(deployment=deployment)  # must not raise
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    assert slot.status != S.IDLE  # never idle with a store we could not clear
    assert "Permission denied" in slot.last_error
    assert slot.retry_after or slot.status == S.FAILED


# --- 4. a pass that dies half-way --------------------------------------------------------
def test_port_range_exhausted_during_refill_finishes_the_pass(fake_engine: FakeEngine) -> None:
    only_pool("node", 3)
    node = Runtime.objects.get(name="node")
    Runtime.objects.filter(pk=node.pk).update(port_max=node.port_min)  # room for one
    result = monitor.reconcile_pass()  # must not raise
    assert "no free port" in str(result)
    record = MonitorPass.objects.get()
    assert record.finished_at is not None and "no free port" in str(record.summary)
    assert PoolContainer.objects.filter(runtime=node).count() == 1


# --- 5. overfilled pools -------------------------------------------------------------------
def test_two_passes_at_once_do_not_overfill(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    only_pool("nginx", 2)
    real_create = services.slot_create
    nested: list[dict[str, Any]] = []

    def create_during_another_pass(*, runtime: Runtime) -> PoolContainer:
        if not nested:  # the watcher's catch-up starts a pass while this one refills
            nested.append({})
            nested[0] = monitor.reconcile_pass(trigger="watch-reconnect")
        return real_create(runtime=runtime)

    monkeypatch.setattr(services, "slot_create", create_during_another_pass)
    monitor.reconcile_pass()
    assert PoolContainer.objects.filter(runtime__name="nginx").count() == 2


def test_a_pool_above_its_size_is_trimmed_to_it(fake_engine: FakeEngine, warm: Callable,
                                                alice: Any) -> None:
    only_pool("nginx", 4)
    warm("nginx", 4)
    deployments.deployment_create(user=alice, runtime_name="nginx")
    Runtime.objects.filter(name="nginx").update(pool_size=2)
    monitor.reconcile_pass()
    slots = PoolContainer.objects.filter(runtime__name="nginx")
    assert slots.count() == 2 and slots.filter(owner=alice).count() == 1
    assert len(fake_engine.containers) == 2


# --- 6. interleaved pushes --------------------------------------------------------------
def test_a_stale_push_never_brings_a_deleted_file_back(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, warm: Callable,
        alice: Any) -> None:
    assert "memory" not in str(connection.settings_dict["NAME"])
    only_pool("nginx", 1)
    warm("nginx", 1)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    upload(deployment, "keep.html", b"keep")
    real_put = fake_engine.put_archive
    racer: list[threading.Thread] = []

    def delete_in_the_web_process() -> None:
        try:
            deployments.deployment_file_delete(deployment=deployment, path="gone.html")
        finally:
            connection.close()

    def put_archive(container_id: str, path: str, data: bytes, replace: bool = False) -> None:
        if not racer:  # the worker's push has its tar; the user's delete comes in now
            racer.append(threading.Thread(target=delete_in_the_web_process))
            racer[0].start()
            racer[0].join(timeout=1.0)
        real_put(container_id, path, data, replace=replace)

    content.content_add(slot_id=slot_of(deployment),
                        uploads=[("gone.html", io.BytesIO(b"deleted later"))])
    services.slot_content_changed(slot_id=slot_of(deployment))
    monkeypatch.setattr(fake_engine, "put_archive", put_archive)
    services.slot_content_sync(slot=PoolContainer.objects.get(pk=deployment.slot_id))
    racer[0].join(timeout=10)
    assert container_files(fake_engine, slot_of(deployment)) == {
        f"{NGINX_ROOT}/keep.html": b"keep"}


# --- 7. a recovered slot serving the placeholder -------------------------------------------
def test_failed_push_after_recovery_is_repushed_by_the_next_pass(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, warm: Callable,
        alice: Any) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    upload(deployment, "index.html", b"mine")
    PoolContainer.objects.filter(pk=deployment.slot_id).update(
        built_at=timezone.now() - timedelta(minutes=10))
    fake_engine.kill(PoolContainer.objects.get(pk=deployment.slot_id).container_id)
    real_put = fake_engine.put_archive
    # The push after the recovery fails, and so does the pass's own retry of it.
    failures = [EngineError("put_archive: daemon hiccup")] * 2

    def flaky_put(container_id: str, path: str, data: bytes, replace: bool = False) -> None:
        if failures:
            raise failures.pop()
        real_put(container_id, path, data, replace=replace)

    monkeypatch.setattr(fake_engine, "put_archive", flaky_put)
    first = monitor.reconcile_pass()
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    assert slot.status == S.ASSIGNED and container_files(fake_engine, slot.pk) == {}
    assert slot.pushed_version < slot.content_version and "push failed" in str(first)
    assert monitor.reconcile_pass()["repushed"] == [slot.pk]
    assert container_files(fake_engine, slot.pk) == {f"{NGINX_ROOT}/index.html": b"mine"}


# --- 8. no side door in the admin ------------------------------------------------------
def test_admin_cannot_delete_pool_containers(operator: Client, warm: Callable) -> None:
    slot = warm("nginx", 1)[0]
    response = operator.post(f"/admin/pools/poolcontainer/{slot.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    changelist = operator.get("/admin/pools/poolcontainer/")
    assert "delete_selected" not in changelist.content.decode()
    assert PoolContainer.objects.filter(pk=slot.pk).exists()


# --- issue 17: a stray file never reaches a user ------------------------------------------
def test_a_file_planted_in_an_idle_store_never_reaches_the_claimer(
        fake_engine: FakeEngine, warm: Callable, bob: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    stray = content.content_dir(slot.pk)
    stray.mkdir(parents=True)
    (stray / "index.html").write_bytes(b"from a test run")
    with caplog.at_level(logging.ERROR):
        deployment = deployments.deployment_create(user=bob, runtime_name="nginx")
    assert deployments.deployment_files(deployment=deployment) == []
    upload(deployment, "bob.html", b"bob")
    assert container_files(fake_engine, slot.pk) == {f"{NGINX_ROOT}/bob.html": b"bob"}
    assert any("not empty" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)


def test_a_file_planted_while_provisioning_is_cleared_before_idle(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    only_pool("nginx", 1)
    real_create = fake_engine.create

    def create_and_plant(spec: ContainerSpec) -> ContainerInfo:
        store = content.content_dir(int(spec.labels["paas.slot"]))
        store.mkdir(parents=True, exist_ok=True)
        (store / "stray.txt").write_bytes(b"x")
        return real_create(spec)

    monkeypatch.setattr(fake_engine, "create", create_and_plant)
    with caplog.at_level(logging.ERROR):
        services.pool_add(runtime_name="nginx", count=1, wait=True)
    slot = PoolContainer.objects.get()
    assert slot.status == S.IDLE
    assert content.content_list(slot_id=slot.pk) == []
    assert any("not empty" in r.getMessage() for r in caplog.records)


def test_an_upload_racing_a_release_never_lands_in_the_store(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, warm: Callable,
        alice: Any) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    slot_id = slot_of(deployment)
    real_add = content.content_add

    def released_meanwhile(**kwargs: Any) -> list[str]:
        # The operator releases the slot while the upload is being unpacked.
        PoolContainer.objects.filter(pk=slot_id).update(status=S.RECYCLING, owner=None)
        return real_add(**kwargs)

    monkeypatch.setattr(content, "content_add", released_meanwhile)
    with pytest.raises(deployments.Released):
        upload(deployment, "late.html", b"too late")
    assert content.content_is_empty(slot_id=slot_id)


# --- back-off: a dead idle slot is not handed out, and is retried when due --------------
def die_right_after_build(fake_engine: FakeEngine, warm: Callable) -> PoolContainer:
    """An idle slot whose fresh container dies at once: the watcher backs it off."""
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]  # just built: a death now is a repeat failure
    fake_engine.kill(slot.container_id)
    assert not monitor.handle_event(slot.container_id, "die", {"paas.slot": str(slot.pk)},
                                    say=lambda s: None)
    slot.refresh_from_db()
    assert slot.status == S.IDLE and slot.retry_after and slot.failures == 1
    return slot


def test_an_idle_slot_in_back_off_is_not_claimable(
        fake_engine: FakeEngine, warm: Callable, alice: Any) -> None:
    slot = die_right_after_build(fake_engine, warm)
    with pytest.raises(PoolExhausted):
        services.slot_claim(runtime=slot.runtime, user=alice)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.owner_id is None


def test_a_slot_in_back_off_is_retried_when_due_not_at_the_next_pass(
        fake_engine: FakeEngine, warm: Callable, alice: Any) -> None:
    from django_q.models import Schedule

    slot = die_right_after_build(fake_engine, warm)
    queued = Schedule.objects.get(func="pools.tasks.slot_retry_due")
    assert queued.schedule_type == Schedule.ONCE and queued.next_run == slot.retry_after
    args = ast.literal_eval(queued.args)
    assert not services.slot_retry_due(slot_id=args[0], generation=args[1])  # not yet due

    PoolContainer.objects.filter(pk=slot.pk).update(
        retry_after=timezone.now() - timedelta(seconds=1))  # what the scheduler waits for
    services._call_task(queued.func, *args)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.retry_after is None
    assert fresh.generation > slot.generation and fresh.container_id != slot.container_id
    assert fake_engine.containers[fresh.container_id].running
    assert not services.slot_retry_due(slot_id=args[0], generation=args[1])  # moved on
    assert services.slot_claim(runtime=slot.runtime, user=alice).pk == slot.pk


# --- found by the soak on PostgreSQL: a release that loses its compare-and-set ---------
def test_a_release_racing_a_finishing_recovery_still_frees_the_slot(
        fake_engine: FakeEngine, warm: Callable, alice: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    real_transition = services.slot_transition
    raced: list[int] = []

    def racing(slot: PoolContainer, **kwargs: Any) -> bool:
        if not raced:  # between the release's read and its write, a recovery settles
            raced.append(slot.pk)
            PoolContainer.objects.filter(pk=slot.pk).update(generation=slot.generation + 1)
        return real_transition(slot, **kwargs)

    monkeypatch.setattr(services, "slot_transition", racing)
    assert deployments.deployment_release(deployment=deployment)
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    assert raced and slot.owner_id is None and slot.status != S.ASSIGNED

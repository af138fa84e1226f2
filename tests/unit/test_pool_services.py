"""Pool services on the FakeEngine: states, ports, claims, release, reinit, generations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from pools import content, health, services
from pools.errors import PoolExhausted, PortRangeExhausted, UnknownRuntime
from pools.models import PoolContainer, Runtime, SlotStatus
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
ON_POSTGRESQL = "postgresql" in settings.DATABASES["default"]["ENGINE"]


def test_runtimes_seeded_with_defaults_and_env_overrides() -> None:
    runtimes = {r.name: r for r in Runtime.objects.all()}
    assert set(runtimes) == {"nginx", "apache", "python", "node"}
    # tests/settings.py sets PAAS_POOL_SIZES nginx=2,... and per-run port ranges
    assert runtimes["nginx"].pool_size == 2
    assert runtimes["nginx"].content_root == "/usr/share/nginx/html"
    assert runtimes["python"].internal_port == 8080
    assert runtimes["apache"].port_min == runtimes["nginx"].port_min + 50
    assert "NET_BIND_SERVICE" in runtimes["nginx"].capabilities
    assert runtimes["python"].capabilities == []


def test_init_fills_every_pool_to_size_with_running_labelled_containers(
        fake_engine: FakeEngine) -> None:
    created = services.pool_init(wait=True)
    assert created == {"nginx": 2, "apache": 1, "python": 1, "node": 1}
    slots = list(PoolContainer.objects.all())
    assert all(s.status == S.IDLE and s.container_id for s in slots)
    info = fake_engine.containers[slots[0].container_id]
    assert info.labels["paas.slot"] == str(slots[0].pk)
    assert info.labels["paas.port"] == str(slots[0].port)
    assert info.name == slots[0].container_name
    # a second init creates nothing more
    assert services.pool_init(wait=True) == {"nginx": 0, "apache": 0, "python": 0, "node": 0}
    assert len(fake_engine.containers) == 5


def test_spec_is_hardened(fake_engine: FakeEngine, warm: Callable) -> None:
    slot = warm("nginx", 1)[0]
    spec = fake_engine.specs[slot.container_id]
    assert spec.cap_add == ["SETUID", "SETGID", "NET_BIND_SERVICE"]
    assert spec.mem_limit_mb > 0 and spec.pids_limit > 0 and spec.cpus > 0
    assert spec.network == f"paas-{services.settings.PAAS_INSTANCE}"
    assert spec.host_port == slot.port and spec.internal_port == 80


def test_ports_are_unique_and_taken_host_ports_skipped(
        monkeypatch: pytest.MonkeyPatch, warm: Callable) -> None:
    runtime = Runtime.objects.get(name="nginx")
    busy = {runtime.port_min, runtime.port_min + 2}
    monkeypatch.setattr(health, "port_is_free", lambda port: port not in busy)
    slots = warm("nginx", 3)
    assert [s.port for s in slots] == [runtime.port_min + 1, runtime.port_min + 3,
                                       runtime.port_min + 4]


def test_port_range_exhausted_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    Runtime.objects.filter(name="node").update(port_max=models_port_min("node") + 1)
    services.pool_add(runtime_name="node", count=2, wait=True)
    with pytest.raises(PortRangeExhausted, match="no free port left"):
        services.pool_add(runtime_name="node", count=1, wait=True)


def models_port_min(name: str) -> int:
    return Runtime.objects.get(name=name).port_min


def test_unknown_runtime() -> None:
    with pytest.raises(UnknownRuntime, match="unknown runtime 'cobol'"):
        services.pool_add(runtime_name="cobol", count=1)


def test_claim_takes_an_idle_slot_without_docker(
        fake_engine: FakeEngine, warm: Callable, alice) -> None:
    warm("nginx", 2)
    fake_engine.available = False  # a claim must not need the engine
    slot = services.slot_claim(runtime=Runtime.objects.get(name="nginx"), user=alice)
    assert slot.status == S.ASSIGNED and slot.owner == alice and slot.assigned_at


def test_claim_when_none_idle_raises_pool_exhausted(warm: Callable, alice, bob) -> None:
    warm("node", 1)
    node = Runtime.objects.get(name="node")
    services.slot_claim(runtime=node, user=alice)
    with pytest.raises(PoolExhausted) as err:
        services.slot_claim(runtime=node, user=bob)
    assert err.value.status == 503 and err.value.code == "pool_exhausted"


def test_release_recycles_to_a_fresh_container_and_clears_content(
        fake_engine: FakeEngine, warm: Callable, alice, settings, tmp_path) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path
    slot = warm("nginx", 1)[0]
    slot = services.slot_claim(runtime=slot.runtime, user=alice)
    import io
    content.content_add(slot_id=slot.pk, uploads=[("index.html", io.BytesIO(b"<h1>alice</h1>"))])
    assert services.slot_content_sync(slot=slot)
    old_id, old_gen = slot.container_id, slot.generation
    assert fake_engine.files[old_id]

    assert services.slot_release(slot=slot)
    slot.refresh_from_db()
    assert slot.status == S.IDLE and slot.owner is None
    assert slot.generation == old_gen + 1 and slot.container_id != old_id
    assert old_id not in fake_engine.containers
    assert fake_engine.files[slot.container_id] == {}
    assert content.content_list(slot_id=slot.pk) == []
    assert not services.slot_release(slot=slot)  # releasing twice does nothing


def test_reinitialize_assigned_slot_restores_content(
        fake_engine: FakeEngine, warm: Callable, alice, settings, tmp_path) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path
    slot = services.slot_claim(runtime=warm("python", 1)[0].runtime, user=alice)
    import io
    content.content_add(slot_id=slot.pk, uploads=[("app.py", io.BytesIO(b"print('hi')"))])
    old_id = slot.container_id
    assert services.slot_reinitialize(slot=slot)
    slot.refresh_from_db()
    assert slot.status == S.ASSIGNED and slot.owner == alice and slot.port
    assert slot.container_id != old_id and old_id not in fake_engine.containers
    assert fake_engine.files[slot.container_id] == {"/app/app.py": b"print('hi')"}
    assert (slot.container_id, "SIGHUP") in fake_engine.signals


def test_reinitialize_idle_slot_gives_a_new_generation(fake_engine: FakeEngine, warm) -> None:
    slot = warm("apache", 1)[0]
    assert services.slot_reinitialize(slot=slot)
    slot.refresh_from_db()
    assert slot.status == S.IDLE and slot.generation == 2
    assert [c.generation for c in fake_engine.containers.values()] == [2]


def test_stale_generation_task_stops_and_leaves_one_container(
        fake_engine: FakeEngine, warm: Callable) -> None:
    slot = warm("nginx", 1)[0]
    # an old task for generation 1 arrives after the slot moved on to generation 2
    assert services.slot_reinitialize(slot=slot)
    assert services.slot_rebuild(slot_id=slot.pk, generation=1) is False
    # the current task running a second time (a retried task) does no double work
    assert services.slot_rebuild(slot_id=slot.pk, generation=2) is False
    assert len(fake_engine.list_managed(services.settings.PAAS_INSTANCE, slot=str(slot.pk))) == 1


def test_generation_compare_and_set_has_exactly_one_winner(warm: Callable) -> None:
    slot = warm("nginx", 1)[0]
    stale_copy = PoolContainer.objects.get(pk=slot.pk)
    assert services.slot_transition(slot, to=S.PROVISIONING)
    # the second writer read the same status and generation: its compare-and-set loses
    assert not services.slot_transition(stale_copy, to=S.PROVISIONING)
    assert PoolContainer.objects.get(pk=slot.pk).generation == stale_copy.generation + 1


def test_set_size_grows_and_shrinks_idle_only(fake_engine: FakeEngine, warm, alice) -> None:
    slots = warm("nginx", 3)
    services.slot_claim(runtime=slots[0].runtime, user=alice)
    result = services.pool_set_size(runtime_name="nginx", size=5, wait=True)
    assert result["added"] == 2
    result = services.pool_set_size(runtime_name="nginx", size=0, wait=True)
    assert result == {"added": 0, "removed": 4, "short": 1}
    remaining = list(PoolContainer.objects.filter(runtime__name="nginx"))
    assert [s.owner for s in remaining] == [alice]
    assert Runtime.objects.get(name="nginx").pool_size == 0
    assert len(fake_engine.containers) == 1  # removed slots' containers are gone


def test_failed_creation_backs_off_then_marks_failed(fake_engine: FakeEngine) -> None:
    fake_engine.fail_create = True
    services.pool_add(runtime_name="nginx", count=1, wait=True)
    slot = PoolContainer.objects.get()
    assert slot.status == S.PROVISIONING and slot.failures == 1 and slot.retry_after
    # the same build again does nothing: one builder per (slot, generation)
    assert not services.slot_rebuild(slot_id=slot.pk, generation=slot.generation)
    for _ in range(services.MAX_FAILURES - 1):  # what the pass does once retry_after is due
        services.slot_retry(slot=PoolContainer.objects.get(pk=slot.pk))
    slot.refresh_from_db()
    assert slot.status == S.FAILED and "create refused" in slot.last_error


@pytest.mark.vendor
def test_fifty_threads_claiming_five_idle_slots_give_exactly_five_winners(
        warm: Callable) -> None:
    # Threads need a database they can share: a file, not SQLite's in-memory one.
    assert "memory" not in str(connection.settings_dict["NAME"])
    slots = warm("nginx", 5)
    users = [get_user_model().objects.create_user(f"u{i}") for i in range(50)]
    runtime = slots[0].runtime
    winners: list[int] = []
    losers: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def claim(user) -> None:
        try:
            barrier.wait()
            winners.append(services.slot_claim(runtime=runtime, user=user).pk)
        except PoolExhausted:
            losers.append(user.username)
        except BaseException as exc:  # any other error fails the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(winners) == sorted(s.pk for s in slots)
    assert len(losers) == 45
    assert PoolContainer.objects.filter(status=S.ASSIGNED).count() == 5


@pytest.mark.vendor
@pytest.mark.skipif(not ON_POSTGRESQL, reason="SKIP LOCKED is PostgreSQL's claim path")
def test_claim_skips_slots_another_transaction_holds_instead_of_waiting(
        warm: Callable, alice) -> None:
    """Four of five idle slots are row-locked by another connection (a claimer in the
    middle of its transaction): the claim takes the fifth at once, it does not queue."""
    slots = warm("nginx", 5)
    free, locked = slots[0], [s.pk for s in slots[1:]]
    holding, release = threading.Event(), threading.Event()

    def hold_locks() -> None:
        try:
            with transaction.atomic():
                list(PoolContainer.objects.select_for_update().filter(pk__in=locked))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_locks)
    holder.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        won = services.slot_claim(runtime=free.runtime, user=alice)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    assert won.pk == free.pk and elapsed < 1.0

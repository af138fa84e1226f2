"""Self-healing on the FakeEngine: the reconcile pass, the event handler, schedules."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from pools import content, health, monitor, services
from pools.engine import ContainerSpec, EngineEvent
from pools.models import MonitorPass, PoolContainer, Recovery, Runtime, SlotStatus
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus


@pytest.fixture(autouse=True)
def no_confirm_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "CONFIRM_DELAY", 0)


@pytest.fixture
def store(settings, tmp_path) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path


def only_pool(name: str, size: int) -> None:
    Runtime.objects.exclude(name=name).update(pool_size=0)
    Runtime.objects.filter(name=name).update(pool_size=size)


def long_ago(slot: PoolContainer) -> None:
    """Pretend the slot's container has been up for a while (not a crash loop)."""
    PoolContainer.objects.filter(pk=slot.pk).update(
        built_at=timezone.now() - timedelta(minutes=10))


def test_killed_idle_container_is_replaced_on_the_same_port(
        fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    long_ago(slot)
    fake_engine.kill(slot.container_id)
    result = monitor.reconcile_pass()
    assert result["ok"] and result["recovered"] == [slot.pk]
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.port == slot.port
    assert fresh.container_id != slot.container_id
    assert fake_engine.containers[fresh.container_id].running
    assert slot.container_id not in fake_engine.containers
    recovery = Recovery.objects.get(slot=slot)
    assert recovery.outcome == "succeeded" and "exited with code 137" in recovery.reason


def test_assigned_slot_gets_users_files_back(
        fake_engine: FakeEngine, warm: Callable, alice, store) -> None:
    only_pool("nginx", 1)
    slot = services.slot_claim(runtime=warm("nginx", 1)[0].runtime, user=alice)
    content.content_add(slot_id=slot.pk, uploads=[("index.html", io.BytesIO(b"mine"))])
    long_ago(slot)
    fake_engine.remove(slot.container_id)  # like `docker rm -f`
    assert monitor.reconcile_pass()["recovered"] == [slot.pk]
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.ASSIGNED and fresh.owner == alice
    assert fake_engine.files[fresh.container_id] == {"/usr/share/nginx/html/index.html": b"mine"}
    recovery = Recovery.objects.get(slot=slot)
    assert recovery.owner == alice and recovery.reason == "container missing"
    assert recovery.duration_seconds is not None


def test_port_not_answering_counts_as_unhealthy_for_web_runtimes(
        monkeypatch: pytest.MonkeyPatch, warm: Callable) -> None:
    only_pool("apache", 1)
    slot = warm("apache", 1)[0]
    long_ago(slot)
    monkeypatch.setattr(health, "http_answers", lambda port, **kw: False)
    result = monitor.reconcile_pass()
    assert result["unhealthy"] == 1 and result["recovered"] == [slot.pk]
    assert "does not answer HTTP" in Recovery.objects.get().reason


def test_users_crashing_app_is_not_a_failed_slot(
        monkeypatch: pytest.MonkeyPatch, warm: Callable, alice) -> None:
    only_pool("python", 1)
    slot = services.slot_claim(runtime=warm("python", 1)[0].runtime, user=alice)
    long_ago(slot)
    monkeypatch.setattr(health, "http_answers", lambda port, **kw: False)
    result = monitor.reconcile_pass()
    assert result["recovered"] == [] and result["healthy"] == 1
    assert PoolContainer.objects.get().container_id == slot.container_id


def test_orphans_removed_but_other_instances_and_unlabelled_untouched(
        fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)

    def run(name: str, labels: dict[str, str], port: int) -> str:
        return fake_engine.create(ContainerSpec(name=name, image="x", labels=labels,
                                                internal_port=80, host_port=port)).id

    orphan = run("orphan", {"paas.instance": settings.PAAS_INSTANCE, "paas.slot": "9999"}, 1)
    other = run("other", {"paas.instance": "someone-else", "paas.slot": "1"}, 2)
    plain = run("plain", {}, 3)
    result = monitor.reconcile_pass()
    assert result["orphans_removed"] == 1
    assert orphan not in fake_engine.containers
    assert other in fake_engine.containers and plain in fake_engine.containers


def test_engine_unreachable_changes_nothing_and_is_recorded(
        fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 2)
    slots = warm("nginx", 2)
    fake_engine.available = False
    result = monitor.reconcile_pass()
    assert not result["ok"] and "not reachable" in result["error"]
    after = list(PoolContainer.objects.order_by("port"))
    assert [(s.status, s.container_id, s.generation) for s in after] == [
        (s.status, s.container_id, s.generation) for s in slots]
    assert MonitorPass.objects.get().ok is False
    fake_engine.available = True
    assert monitor.reconcile_pass()["ok"]


def test_missing_slots_are_refilled(fake_engine: FakeEngine, warm: Callable) -> None:
    warm("node", 1)
    only_pool("node", 2)
    result = monitor.reconcile_pass()
    assert result["refilled"] == {"node": 1}
    assert PoolContainer.objects.filter(runtime__name="node", status=S.IDLE).count() == 2


def test_crash_loop_backs_off_then_ends_failed_without_churn(
        fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    long_ago(slot)
    created_before = len(fake_engine.specs)
    for _round in range(4 * services.MAX_FAILURES):
        current = PoolContainer.objects.get(pk=slot.pk)
        if current.container_id in fake_engine.containers:
            fake_engine.kill(current.container_id)  # the replacement dies at once
        PoolContainer.objects.filter(pk=slot.pk, retry_after__isnull=False).update(
            retry_after=timezone.now() - timedelta(seconds=1))  # back-off elapsed
        monitor.reconcile_pass()
        if PoolContainer.objects.get(pk=slot.pk).status == S.FAILED:
            break
    final = PoolContainer.objects.get(pk=slot.pk)
    assert final.status == S.FAILED
    assert "keeps failing" in final.last_error
    rebuilt = len(fake_engine.specs) - created_before
    assert rebuilt == services.MAX_FAILURES  # bounded: no churn after giving up
    monitor.reconcile_pass()
    assert len(fake_engine.specs) - created_before == rebuilt


def test_back_off_defers_the_retry(fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]  # just built: a death now is a repeat failure
    fake_engine.kill(slot.container_id)
    assert monitor.reconcile_pass()["recovered"] == []
    slot.refresh_from_db()
    assert slot.failures == 1 and slot.retry_after > timezone.now()
    assert monitor.reconcile_pass()["recovered"] == []  # still backing off


def test_stuck_busy_slot_is_retried_under_a_new_generation(
        fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    PoolContainer.objects.filter(pk=slot.pk).update(
        status=S.PROVISIONING,
        status_changed_at=timezone.now() - timedelta(seconds=monitor.stuck_seconds() + 1))
    assert monitor.reconcile_pass()["retried"] == [slot.pk]
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.generation == slot.generation + 1
    assert len(fake_engine.list_managed(settings.PAAS_INSTANCE)) == 1


def test_busy_slot_is_retried_once_its_task_has_outlived_the_task_timeout(
        fake_engine: FakeEngine, warm: Callable, settings) -> None:
    """Redis never hands a killed worker's task out again (and a killed cluster loses
    the tasks it had taken but not started): once a busy slot has been untouched longer
    than any task may run, nothing else will finish it, so the pass retries it then."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}
    only_pool("nginx", 2)
    slots = warm("nginx", 2)
    for slot, age in zip(slots, [50, 100], strict=True):
        PoolContainer.objects.filter(pk=slot.pk).update(
            status=S.RECYCLING, status_changed_at=timezone.now() - timedelta(seconds=age))
    # 50 s: its task may still be running; 100 s: past the timeout and the margin.
    assert monitor.reconcile_pass()["retried"] == [slots[1].pk]


def test_event_for_current_container_queues_recovery(
        fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    long_ago(slot)
    labels = {"paas.slot": str(slot.pk)}
    assert not monitor.handle_event("not-the-current-one", "die", labels, say=lambda s: None)
    fake_engine.kill(slot.container_id)
    assert monitor.handle_event(slot.container_id, "die", labels, say=lambda s: None)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.container_id != slot.container_id
    assert Recovery.objects.get().trigger == "watch"


def test_the_watcher_records_which_news_queued_the_recovery(
        fake_engine: FakeEngine, warm: Callable) -> None:
    """A swarm node's own container event is told apart from the manager's task poll."""
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    long_ago(slot)
    fake_engine.kill(slot.container_id)
    fake_engine.pending_events.append(EngineEvent(
        "die", slot.container_id, {"paas.slot": str(slot.pk)}, trigger="watch-node"))
    monitor.watch(say=lambda s: None, max_events=1)
    assert Recovery.objects.get().trigger == "watch-node"


def test_oom_event_of_a_child_process_leaves_a_running_container_alone(
        fake_engine: FakeEngine, warm: Callable, alice) -> None:
    """The kernel killed one process inside; the container (its PID 1) still runs, so
    the user keeps it. Only an oom that took the container down is recovered."""
    only_pool("python", 1)
    slot = warm("python", 1)[0]
    long_ago(slot)
    slot = services.slot_claim(runtime=slot.runtime, user=alice)
    labels = {"paas.slot": str(slot.pk)}
    assert not monitor.handle_event(slot.container_id, "oom", labels, say=lambda s: None)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert (fresh.container_id, fresh.generation) == (slot.container_id, slot.generation)
    assert not Recovery.objects.exists()
    fake_engine.kill(slot.container_id, oom=True)
    assert monitor.handle_event(slot.container_id, "oom", labels, say=lambda s: None)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.ASSIGNED and fresh.container_id != slot.container_id


def test_schedule_install_is_idempotent() -> None:
    from django_q.models import Schedule

    monitor.schedules_install()
    monitor.schedules_install()
    schedule = Schedule.objects.get(name=monitor.SCHEDULE_NAME)
    assert schedule.func == "pools.tasks.reconcile"
    assert schedule.minutes == max(1, round(settings.PAAS_MONITOR_INTERVAL / 60))


def test_container_killed_right_after_a_claim_is_recovered_at_once(
        fake_engine: FakeEngine, warm: Callable, alice) -> None:
    """A claim is not a rebuild: the back-off clock only starts when a container is built."""
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    long_ago(slot)
    slot = services.slot_claim(runtime=slot.runtime, user=alice)
    fake_engine.kill(slot.container_id)
    assert monitor.handle_event(slot.container_id, "die", {"paas.slot": str(slot.pk)},
                                say=lambda s: None)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.ASSIGNED and fresh.container_id != slot.container_id


def test_replacement_that_exits_at_once_is_recorded_with_its_exit(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    monkeypatch.setattr(health, "http_answers", lambda port, **kw: False)
    real_create = fake_engine.create

    def create_dead(spec):  # the new container dies straight away
        info = real_create(spec)
        fake_engine.kill(info.id)
        return info

    monkeypatch.setattr(fake_engine, "create", create_dead)
    assert services.slot_reinitialize(slot=slot)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.PROVISIONING and fresh.failures == 1
    assert "exited with code 137" in fresh.last_error


def test_recovery_history_outlives_a_removed_slot(fake_engine: FakeEngine, warm: Callable) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    long_ago(slot)
    fake_engine.kill(slot.container_id)
    monitor.reconcile_pass()
    services.pool_set_size(runtime_name="nginx", size=0)
    assert not PoolContainer.objects.exists()
    recovery = Recovery.objects.get()
    assert recovery.slot is None and recovery.port == slot.port and recovery.outcome == "succeeded"

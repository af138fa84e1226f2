"""The state machine itself on the FakeEngine: the transition table, the invariants
checker, the pass lease, and retention pruning."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from deployments import services as deployments
from pools import content, monitor, services
from pools.engine import ContainerSpec
from pools.invariants import invariants_check
from pools.lease import LeaseBusy, lease_acquire, lease_held
from pools.models import Lease, MonitorPass, PoolContainer, Recovery, Runtime, SlotStatus
from pools.states import TRANSITIONS, InvalidTransition
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path / "content"


def only_pool(name: str, size: int) -> None:
    Runtime.objects.exclude(name=name).update(pool_size=0)
    Runtime.objects.filter(name=name).update(pool_size=size)


# --- the table ----------------------------------------------------------------------
def test_every_state_is_reachable_and_can_leave() -> None:
    sources = {frm for frm, _ in TRANSITIONS}
    targets = {to for _, to in TRANSITIONS}
    assert sources == targets == set(S.values)


def test_a_move_outside_the_table_is_refused(warm: Callable) -> None:
    slot = warm("nginx", 1)[0]
    with pytest.raises(InvalidTransition, match="idle -> recovering"):
        services.slot_transition(slot, to=S.RECOVERING)  # an idle slot has no owner
    with pytest.raises(InvalidTransition):
        services.slot_transition(slot, to=S.RECYCLING)  # only a held slot is released
    assert PoolContainer.objects.get(pk=slot.pk).status == S.IDLE


def test_only_moves_into_a_busy_state_bump_the_generation(
        fake_engine: FakeEngine, warm: Callable, alice: Any) -> None:
    only_pool("nginx", 1)
    slot = warm("nginx", 1)[0]
    claimed = services.slot_claim(runtime=slot.runtime, user=alice)
    assert claimed.generation == slot.generation  # a claim is not a rebuild
    assert services.slot_release(slot=claimed)
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert fresh.status == S.IDLE and fresh.generation == slot.generation + 1


# --- invariants -----------------------------------------------------------------------
def test_invariants_hold_on_a_settled_platform(
        fake_engine: FakeEngine, warm: Callable, alice: Any) -> None:
    only_pool("nginx", 2)
    warm("nginx", 2)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    deployments.deployment_upload(deployment=deployment,
                                  uploads=[("index.html", io.BytesIO(b"hi"))])
    monitor.reconcile_pass()
    assert invariants_check() == []


def test_invariants_name_each_violation(fake_engine: FakeEngine, warm: Callable,
                                        alice: Any) -> None:
    only_pool("nginx", 2)
    idle, other = warm("nginx", 2)
    stray = content.content_dir(idle.pk)
    stray.mkdir(parents=True)
    (stray / "x").write_bytes(b"x")
    held = services.slot_claim(runtime=idle.runtime, user=alice)
    if held.pk == idle.pk:
        idle, other = other, idle
        stray = content.content_dir(idle.pk)
        stray.mkdir(parents=True)
        (stray / "x").write_bytes(b"x")
    PoolContainer.objects.filter(pk=held.pk).update(content_version=3, pushed_version=2)
    fake_engine.create(ContainerSpec(name="twin", image="x", internal_port=80, host_port=1,
                                     labels={"paas.instance": services.settings.PAAS_INSTANCE,
                                             "paas.slot": str(idle.pk)}))
    now = timezone.now()
    MonitorPass.objects.create(started_at=now, finished_at=now + timedelta(seconds=5))
    MonitorPass.objects.create(started_at=now + timedelta(seconds=1),
                               finished_at=now + timedelta(seconds=2))
    problems = "\n".join(invariants_check())
    assert f"slot {idle.pk} is idle with a non-empty content store" in problems
    assert f"slot {held.pk} is assigned but serves content version 2, not 3" in problems
    assert f"slot {idle.pk} has 2 containers" in problems
    assert "ran at the same time" in problems
    with pytest.raises(CommandError, match="invariant"):
        call_command("pool", "check", stdout=io.StringIO())


# --- the lease ----------------------------------------------------------------------------
def test_a_held_lease_skips_the_pass_and_an_expired_one_does_not_block(
        fake_engine: FakeEngine) -> None:
    only_pool("nginx", 1)
    Lease.objects.create(name="pools", holder="a-live-worker",
                         expires_at=timezone.now() + timedelta(minutes=5))
    assert monitor.reconcile_pass()["skipped"]
    assert not PoolContainer.objects.exists() and not MonitorPass.objects.exists()
    # the holder was killed: its lease runs out and the next pass goes ahead
    Lease.objects.filter(name="pools").update(expires_at=timezone.now() - timedelta(seconds=1))
    result = monitor.reconcile_pass()
    assert result["ok"] and result["refilled"] == {"nginx": 1}
    assert Lease.objects.get(name="pools").holder == ""  # released after the pass


def test_two_holders_exclude_each_other_until_released() -> None:
    with lease_held() as first:
        assert not lease_acquire(name="pools", holder="someone-else")
        with pytest.raises(LeaseBusy), lease_held(wait=0.3):
            pass
        first.renew()
    with lease_held():
        pass


def test_a_command_gives_up_on_a_held_lease_with_a_clear_error(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "COMMAND_LEASE_WAIT", 0.3)
    Lease.objects.create(name="pools", holder="a-live-worker",
                         expires_at=timezone.now() + timedelta(minutes=5))
    with pytest.raises(CommandError, match="Another reconcile pass"):
        call_command("pool", "add", "nginx", "1", stdout=io.StringIO())


# --- converge -------------------------------------------------------------------------
def test_an_admin_size_change_only_requests_a_converge(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, settings: Any,
        warm: Callable) -> None:
    only_pool("nginx", 1)
    warm("nginx", 1)
    settings.PAAS_TASKS_INLINE = False
    queued: list[tuple[str, tuple[Any, ...]]] = []
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task",
                        lambda func, *args, **kw: queued.append((func, args)))
    services.pool_set_size(runtime_name="nginx", size=3)
    assert PoolContainer.objects.count() == 1  # nothing counted and created here
    assert queued == [("pools.tasks.pool_converge", ("nginx",))]
    from pools import tasks

    settings.PAAS_TASKS_INLINE = True
    assert tasks.pool_converge("nginx") == {"added": 2, "removed": 0, "short": 0}


# --- retention ----------------------------------------------------------------------
def test_prune_removes_old_history_and_lock_files_of_deleted_slots(
        fake_engine: FakeEngine, warm: Callable, alice: Any, settings: Any) -> None:
    only_pool("nginx", 2)
    warm("nginx", 2)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    deployments.deployment_upload(deployment=deployment, uploads=[("a", io.BytesIO(b"a"))])
    other = PoolContainer.objects.exclude(pk=deployment.slot_id).get()
    old = timezone.now() - timedelta(days=settings.PAAS_HISTORY_DAYS + 1)
    MonitorPass.objects.create(started_at=old, finished_at=old, ok=True)
    MonitorPass.objects.create(ok=True)
    Recovery.objects.create(runtime_name="nginx", port=1, generation=1, reason="x",
                            started_at=old, finished_at=old)
    base = Path(settings.PAAS_CONTENT_DIR)
    two_hours_ago = time.time() - 7200
    for name in (f".lock-{other.pk}", f".push-{other.pk}"):
        (base / name).touch()
        os.utime(base / name, (two_hours_ago, two_hours_ago))
    (base / ".lock-999999").touch()  # a slot created after the prune read the rows
    PoolContainer.objects.filter(pk=other.pk).delete()
    out = io.StringIO()
    call_command("pool", "prune", stdout=out)
    assert "monitor_passes=1, recoveries=1" in out.getvalue()
    assert MonitorPass.objects.count() == 1 and not Recovery.objects.exists()
    assert not (base / f".lock-{other.pk}").exists()
    assert not (base / f".push-{other.pk}").exists()
    assert (base / ".lock-999999").exists()
    assert (base / f".lock-{deployment.slot_id}").exists()
    assert content.content_list(slot_id=int(str(deployment.slot_id))) == [
        {"path": "a", "size": 1}]


def test_a_failed_slot_shows_its_reason_in_the_admin_and_pool_status(
        fake_engine: FakeEngine, operator: Any) -> None:
    only_pool("nginx", 1)
    fake_engine.fail_create = True
    services.pool_add(runtime_name="nginx", count=1, wait=True)
    for _ in range(services.MAX_FAILURES):
        services.slot_retry(slot=PoolContainer.objects.get())
    slot = PoolContainer.objects.get()
    assert slot.status == S.FAILED
    page = operator.get("/admin/pools/poolcontainer/").content.decode()
    assert "failed: fake engine: create refused" in page
    out = io.StringIO()
    call_command("pool", "status", stdout=out)
    assert f"slot {slot.pk} (nginx:{slot.port}) failed: fake engine: create refused" in out.getvalue()


def test_pool_reconcile_waits_for_a_running_pass(
        fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    only_pool("nginx", 1)
    Lease.objects.create(name="pools", holder="a-pass-about-to-end",
                         expires_at=timezone.now() + timedelta(seconds=1))
    out = io.StringIO()
    call_command("pool", "reconcile", stdout=out)  # waits the second out, then runs
    assert '"refilled": {\n    "nginx": 1' in out.getvalue()
    monkeypatch.setattr(services, "COMMAND_LEASE_WAIT", 0.2)
    Lease.objects.filter(name="pools").update(
        holder="a-long-pass", expires_at=timezone.now() + timedelta(minutes=5))
    with pytest.raises(CommandError, match="still running"):
        call_command("pool", "reconcile", stdout=io.StringIO())


def test_only_slot_transition_writes_a_slot_status() -> None:
    """No side door in the code either: in ``pools`` and ``deployments`` every UPDATE
    that sets a slot's ``status`` is inside ``slot_transition`` (the claim's one SQL
    statement is the other writer, checked by its own tests)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    writers = []
    for path in [*(root / "pools").rglob("*.py"), *(root / "deployments").rglob("*.py")]:
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            for call in ast.walk(func):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr == "update"
                        and any(k.arg == "status" for k in call.keywords)
                        and "Deployment" not in ast.unparse(call)):
                    writers.append(f"{path.relative_to(root)}:{func.name}")
    assert writers == ["pools/services.py:slot_transition"]


def test_operators_see_who_holds_the_lease(operator: Any) -> None:
    Lease.objects.create(name="pools", holder="worker-7",
                         expires_at=timezone.now() + timedelta(minutes=5))
    page = operator.get("/admin/pools/lease/")
    assert page.status_code == 200 and "worker-7" in page.content.decode()
    assert operator.post("/admin/pools/lease/pools/delete/", {"post": "yes"}).status_code == 403

"""The audit trail: every admin action, runtime edit, user deactivation and pool
command leaves its row with the right actor; automatic recoveries and giving up on a
slot too. Read-only in the admin; staff-only in the API."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from deployments.services import deployment_create
from pools import monitor, services
from pools.audit import audit_record, command_actor
from pools.models import AuditEntry, PoolContainer, Runtime, SlotStatus
from tests.conftest import runtime_form
from tests.fakes import FakeEngine

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
CHANGELIST = "/admin/pools/poolcontainer/"


def only(action: str) -> AuditEntry:
    rows = list(AuditEntry.objects.filter(action=action))
    assert len(rows) == 1, [(r.action, r.actor_name) for r in AuditEntry.objects.all()]
    return rows[0]


def post_action(client: Client, url: str, name: str, ids: list[int]) -> None:
    response = client.post(url, {"action": name, "_selected_action": [str(i) for i in ids]})
    assert response.status_code == 302


# --- operator actions in the admin ------------------------------------------------------
def test_admin_slot_actions_are_recorded_with_the_operator(
        operator: Client, charlie: AbstractUser, alice: AbstractUser, warm: Callable) -> None:
    slots = warm("nginx", 2)
    deployment_create(user=alice, runtime_name="nginx")
    assigned = PoolContainer.objects.get(owner=alice)
    post_action(operator, CHANGELIST, "reinitialize", [slots[0].pk])
    post_action(operator, CHANGELIST, "release", [assigned.pk])
    reinit, release = only("reinitializing"), only("released")
    assert reinit.actor == charlie and reinit.actor_name == "charlie"
    assert reinit.source == "admin" and reinit.slots == [str(slots[0])]
    assert release.slots == [f"{assigned} (was alice)"] and release.result == "1 done, 0 skipped"


def test_admin_add_containers_runtime_edit_and_pool_reinit_are_recorded(
        operator: Client, warm: Callable) -> None:
    warm("nginx", 1)
    nginx = Runtime.objects.get(name="nginx")
    operator.post(reverse("admin:pools_poolcontainer_add_containers"),
                  {"runtime": nginx.pk, "count": 2})
    added = only("pool.add")
    assert added.actor_name == "charlie" and added.detail == "nginx x2"
    operator.post(f"/admin/pools/runtime/{nginx.pk}/change/",
                  runtime_form(nginx, pool_size=1, mem_limit_mb=300))
    change = only("runtime.change")
    assert "pool_size" in change.detail and "mem_limit_mb" in change.detail
    post_action(operator, "/admin/pools/runtime/", "reinitialize_pool", [nginx.pk])
    assert only("reinitializing").slots == [str(s) for s in nginx.slots.all()]


def test_user_release_all_and_deactivation_are_recorded(
        operator: Client, alice: AbstractUser, warm: Callable) -> None:
    warm("nginx", 2)
    deployment_create(user=alice, runtime_name="nginx")
    post_action(operator, "/admin/auth/user/", "release_all", [alice.pk])
    entry = only("user.release_all")
    assert entry.users == ["alice"] and entry.result == "released 1"
    context = operator.get(f"/admin/auth/user/{alice.pk}/change/").context
    form = context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "is_active"}
    data.update({"date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
                 "last_login_0": "", "last_login_1": "", "groups": [],
                 "user_permissions": []})
    for inline in context["inline_admin_formsets"]:  # every inline's management form
        management = inline.formset.management_form
        data.update({f"{management.prefix}-{name}": management[name].value()
                     for name in management.fields})
    response = operator.post(f"/admin/auth/user/{alice.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert only("user.deactivate").users == ["alice"]


def test_the_admin_trail_is_read_only(operator: Client) -> None:
    audit_record(actor="system:test", action="x", source="system")
    entry = AuditEntry.objects.get()
    assert operator.get("/admin/pools/auditentry/?source__exact=system").status_code == 200
    assert operator.get("/admin/pools/auditentry/add/").status_code == 403
    operator.post(f"/admin/pools/auditentry/{entry.pk}/change/", {"action": "y"})
    operator.post(f"/admin/pools/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.get().action == "x"


# --- pool commands ------------------------------------------------------------------------
def run(*args: str) -> None:
    call_command("pool", *args, stdout=io.StringIO())


def test_pool_commands_are_recorded_with_the_login(alice: AbstractUser) -> None:
    run("init")
    run("add", "nginx", "1")
    run("set-size", "nginx", "1")
    run("release", "--user", "alice")
    run("status")
    with pytest.raises(CommandError):
        run("add", "no-such", "1")
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "result"))
    assert [a for a, _ in actions] == ["pool.init", "pool.add", "pool.set-size",
                                       "pool.release", "pool.add"]
    assert actions[-1][1].startswith("error: unknown runtime")
    assert set(AuditEntry.objects.values_list("actor_name", flat=True)) == {command_actor()}
    assert only("pool.release").users == ["alice"]
    assert command_actor().startswith("cli:")


# --- automatic actions -------------------------------------------------------------------
def test_recovery_and_giving_up_are_recorded_as_the_system(
        fake_engine: FakeEngine, warm: Callable, alice: AbstractUser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "CONFIRM_DELAY", 0)
    warm("nginx", 1)
    deployment_create(user=alice, runtime_name="nginx")
    slot = PoolContainer.objects.get(owner=alice)
    PoolContainer.objects.filter(pk=slot.pk).update(built_at=timezone.now() - timedelta(hours=1))
    fake_engine.kill(slot.container_id)
    monitor.handle_event(slot.container_id, "die", {"paas.slot": str(slot.pk)},
                         say=lambda line: None)
    entry = only("slot.recover")
    assert entry.actor_name == "system:watch" and entry.actor is None
    assert entry.slots == [str(slot)] and entry.users == ["alice"]
    fake_engine.fail_create = True
    slot.refresh_from_db()
    services.slot_reinitialize(slot=slot)  # fails: one more try each retry below
    for _ in range(services.MAX_FAILURES - 1):
        slot.refresh_from_db()
        services.slot_retry(slot=slot)
    assert PoolContainer.objects.get(pk=slot.pk).status == S.FAILED
    given_up = only("slot.failed")
    assert given_up.actor_name == "system:back-off" and given_up.users == ["alice"]


# --- the staff API ------------------------------------------------------------------------
def test_audit_api_is_staff_only_filterable_and_checks_its_input(
        alice: AbstractUser, charlie: AbstractUser, api: Callable[..., APIClient]) -> None:
    audit_record(actor=charlie, action="pool.add", source="admin", slots=["nginx:8001"])
    audit_record(actor="system:watch", action="slot.recover", source="system",
                 slots=["nginx:8002"], users=["alice"])
    assert api(alice).get("/api/audit/").status_code == 403
    assert api().get("/api/audit/").status_code == 401
    staff = api(charlie)
    body = staff.get("/api/audit/").json()
    assert [e["action"] for e in body] == ["slot.recover", "pool.add"]
    assert staff.get("/api/audit/?actor=charlie").json()[0]["slots"] == ["nginx:8001"]
    assert [e["action"] for e in staff.get("/api/audit/?user=alice").json()] == ["slot.recover"]
    assert [e["action"] for e in staff.get("/api/audit/?slot=nginx:8001").json()] == ["pool.add"]
    assert len(staff.get("/api/audit/?origin=system&limit=1").json()) == 1
    bad = staff.get("/api/audit/?limit=0&since=yesterday")
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"limit", "since"}
    assert "/api/audit/" in staff.get("/api/schema/").content.decode()

"""Elastic pools on the fake engine: a claim asks for a converge that builds ahead of
demand (min idle, step), never beyond max total; idle slots above the target go after
idle_ttl, longest-idle first, never an assigned one and never below min idle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from deployments.models import Deployment
from pools import services
from pools.models import PoolContainer, Runtime, SlotStatus
from pools.policy import pool_targets

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus


@pytest.fixture
def elastic(settings: SettingsWrapper, warm: Callable) -> Callable[..., Runtime]:
    """``elastic(min_idle=2, max_total=6, step=2)``: an elastic nginx pool, warm."""

    def make(*, min_idle: int = 2, max_total: int = 6, step: int = 2,
             idle_ttl: int = 600) -> Runtime:
        settings.PAAS_ELASTIC = True
        Runtime.objects.filter(name="nginx").update(
            pool_size=0, max_total=max_total, step=step, idle_ttl=idle_ttl)
        warm("nginx", min_idle)  # the size grows to min idle, and so many are built
        runtime = Runtime.objects.get(name="nginx")
        assert (runtime.min_idle, runtime.slots.count()) == (min_idle, min_idle)
        return runtime

    return make


def counts() -> dict[str, int]:
    rows = PoolContainer.objects.filter(runtime__name="nginx")
    return {status: rows.filter(status=status).count() for status in (S.IDLE, S.ASSIGNED)}


def launch(api: Callable[..., APIClient], user: AbstractUser) -> int:
    return api(user).post("/api/deployments/", {"runtime": "nginx"},
                          format="json").status_code


def test_a_claim_builds_ahead_at_once(elastic: Callable[..., Runtime], alice: AbstractUser,
                                      api: Callable[..., APIClient]) -> None:
    elastic(min_idle=2, max_total=10, step=2)
    assert launch(api, alice) == 201
    # one in use, two idle wanted: three in all, and a step of two built at once
    assert counts() == {S.IDLE: 3, S.ASSIGNED: 1}


def test_a_class_larger_than_the_warm_pool_gets_in_up_to_max_total(
        elastic: Callable[..., Runtime], make_user: Callable[..., AbstractUser],
        api: Callable[..., APIClient]) -> None:
    elastic(min_idle=2, max_total=6, step=2)
    students = [make_user(f"s{n}") for n in range(8)]
    answers = [launch(api, student) for student in students]
    assert answers == [201] * 6 + [503] * 2  # exactly max total succeed
    response = api(students[-1]).post("/api/deployments/", {"runtime": "nginx"},
                                      format="json")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert PoolContainer.objects.filter(runtime__name="nginx").count() == 6


def test_idle_slots_above_min_idle_go_after_idle_ttl_never_assigned_ones(
        elastic: Callable[..., Runtime], alice: AbstractUser, bob: AbstractUser,
        api: Callable[..., APIClient]) -> None:
    runtime = elastic(min_idle=2, max_total=10, step=4, idle_ttl=600)
    assert launch(api, alice) == 201 and launch(api, bob) == 201
    Deployment.objects.filter(user=bob).get()  # bob keeps his
    for deployment in Deployment.objects.filter(user=alice):
        api(alice).delete(f"/api/deployments/{deployment.pk}/")
    before = counts()
    assert before[S.IDLE] > 3  # the burst left extra idle slots
    services.pool_converge(runtime=runtime)  # not yet: they are fresh
    assert counts() == before
    PoolContainer.objects.filter(status=S.IDLE).update(
        status_changed_at=timezone.now() - timedelta(seconds=601))
    result = services.pool_converge(runtime=runtime)
    assert counts() == {S.IDLE: 2, S.ASSIGNED: 1}  # back to min idle; bob untouched
    assert result["removed"] == before[S.IDLE] - 2
    assert PoolContainer.objects.get(owner=bob).status == S.ASSIGNED


def test_longest_idle_go_first(elastic: Callable[..., Runtime]) -> None:
    runtime = elastic(min_idle=1, max_total=10, idle_ttl=60)
    services.pool_add(runtime_name="nginx", count=2, wait=True)
    Runtime.objects.filter(pk=runtime.pk).update(pool_size=1)
    slots = list(PoolContainer.objects.order_by("port"))
    now = timezone.now()
    for age, slot in zip((300, 100, 900), slots, strict=True):
        PoolContainer.objects.filter(pk=slot.pk).update(
            status_changed_at=now - timedelta(seconds=age))
    services.pool_converge(runtime=Runtime.objects.get(pk=runtime.pk))
    assert list(PoolContainer.objects.values_list("pk", flat=True)) == [slots[1].pk]


def test_waiting_launches_count_as_demand(elastic: Callable[..., Runtime],
                                          alice: AbstractUser, bob: AbstractUser) -> None:
    runtime = elastic(min_idle=2, max_total=20, step=1)
    for user in (alice, bob):
        Deployment.objects.create(user=user, runtime_name="nginx",
                                  status=Deployment.Status.PENDING)
    targets = pool_targets(runtime=runtime, total=2)
    assert (targets.build_to, targets.trim_to) == (4, 4)


def test_an_operators_smaller_size_trims_at_once(elastic: Callable[..., Runtime]) -> None:
    elastic(min_idle=4, max_total=10)
    result = services.pool_set_size(runtime_name="nginx", size=1, wait=True)
    assert result["removed"] == 3 and counts()[S.IDLE] == 1


def test_fixed_pools_when_elastic_is_off(settings: SettingsWrapper, warm: Callable,
                                         alice: AbstractUser,
                                         api: Callable[..., APIClient]) -> None:
    settings.PAAS_ELASTIC = False
    warm("nginx", 2)
    Runtime.objects.filter(name="nginx").update(pool_size=2, max_total=10)
    assert launch(api, alice) == 201
    assert counts() == {S.IDLE: 1, S.ASSIGNED: 1}


def test_pool_add_adds_that_many_beside_those_in_use(
        elastic: Callable[..., Runtime], alice: AbstractUser,
        api: Callable[..., APIClient]) -> None:
    elastic(min_idle=2, max_total=20, step=1)
    assert launch(api, alice) == 201  # one in use, two idle
    assert counts() == {S.IDLE: 2, S.ASSIGNED: 1}
    services.pool_add(runtime_name="nginx", count=2, wait=True)
    assert counts() == {S.IDLE: 4, S.ASSIGNED: 1}


# --- one definition of "claimable idle" ---------------------------------------------------
def _back_off_one_idle_slot() -> PoolContainer:
    slot = PoolContainer.objects.filter(status=S.IDLE).order_by("port").first()
    assert slot is not None
    PoolContainer.objects.filter(pk=slot.pk).update(
        retry_after=timezone.now() + timedelta(seconds=60))
    return slot


def test_a_backed_off_idle_slot_does_not_count_as_idle_for_the_policy(
        elastic: Callable[..., Runtime]) -> None:
    runtime = elastic(min_idle=2, max_total=10, step=1)
    assert pool_targets(runtime=runtime, total=2).build_to == 2
    _back_off_one_idle_slot()
    # One of the two idle slots cannot be claimed: the pool builds one more for min idle.
    assert pool_targets(runtime=runtime, total=2).build_to == 3
    services.pool_converge(runtime=runtime)
    assert PoolContainer.objects.filter(status=S.IDLE, retry_after__isnull=True).count() == 2


def test_a_backed_off_idle_slot_is_not_idle_in_the_overview_nor_coming_for_launches(
        elastic: Callable[..., Runtime]) -> None:
    from deployments.services import slots_coming
    from pools.selectors import slots_claimable

    runtime = elastic(min_idle=2, max_total=2)
    _back_off_one_idle_slot()
    [nginx] = [row for row in services.pool_counts() if row["runtime"] == "nginx"]
    assert nginx["idle"] == 1
    assert slots_claimable(runtime=runtime).count() == 1
    assert slots_coming(runtime=runtime) == 1  # max total reached: nothing more to build


# --- converge requests coalesce -------------------------------------------------------------
def test_a_burst_of_launches_queues_one_converge_not_one_each(
        settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forty launches at once queued forty converges, and the slot builds they asked for
    waited behind all of them (found by the live burst test)."""
    import django_q.tasks

    queued: list[tuple] = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda *args, **kw: queued.append(args))
    settings.PAAS_TASKS_INLINE = False
    for _ in range(40):
        services.pool_converge_request(runtime_name="nginx")
    services.pool_converge_request(runtime_name="python")
    assert queued == [("pools.tasks.pool_converge", "nginx"),
                      ("pools.tasks.pool_converge", "python")]
    services.pool_converge_locked(runtime_name="nginx")  # the queued one runs and counts
    services.pool_converge_request(runtime_name="nginx")  # a request after it counted
    converges = [args for args in queued if args[0] == "pools.tasks.pool_converge"]
    assert converges[-1] == ("pools.tasks.pool_converge", "nginx") and len(converges) == 3


def test_a_converge_is_still_requested_when_the_cache_is_down(
        settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch) -> None:
    import django_q.tasks

    def down(*args: object, **kw: object) -> bool:
        raise ConnectionError("redis down")

    queued: list[tuple] = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda *args, **kw: queued.append(args))
    monkeypatch.setattr(services.cache, "add", down)
    settings.PAAS_TASKS_INLINE = False
    services.pool_converge_request(runtime_name="nginx")  # the launch does not fail
    assert queued == [("pools.tasks.pool_converge", "nginx")]

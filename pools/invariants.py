"""The slot invariants (``pools.states`` states them), checked on demand: by tests, by
the soak's checkpoints, by an operator's ``pool check``. Each violation is one line.

Meant for a settled platform (no build or push in flight): a slot in the middle of its
own move may show a passing difference, so callers check at checkpoints and after
waiting for the pools to settle.
"""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings
from django.db.models import F

from pools import content
from pools.engine import get_engine
from pools.models import MonitorPass, PoolContainer, SlotStatus
from pools.states import BUSY, SETTLED

S = SlotStatus


def invariants_check(*, engine: bool = True) -> list[str]:
    """Every violated invariant, one line each; empty when all hold. With ``engine`` the
    labelled containers are listed too (Docker must answer)."""
    slots = list(PoolContainer.objects.select_related("runtime"))
    problems = _unowned_and_empty(slots) + _assigned_current(slots) + _one_pass_at_a_time()
    if engine:
        problems += _one_container_per_slot(slots)
    return problems


def _unowned_and_empty(slots: list[PoolContainer]) -> list[str]:
    found = []
    for slot in slots:
        if slot.status not in (S.IDLE, S.PROVISIONING):
            continue
        if slot.owner_id is not None:
            found.append(f"slot {slot.pk} is {slot.status} but owned by user {slot.owner_id}")
        if not content.content_is_empty(slot_id=slot.pk):
            found.append(f"slot {slot.pk} is {slot.status} with a non-empty content store")
    return found


def _assigned_current(slots: list[PoolContainer]) -> list[str]:
    return [
        f"slot {slot.pk} is assigned but serves content version {slot.pushed_version}, "
        f"not {slot.content_version}"
        for slot in slots
        if slot.status == S.ASSIGNED and slot.pushed_version < slot.content_version
    ] + [f"slot {slot.pk} is {slot.status} without a container"
         for slot in slots if slot.status in SETTLED and not slot.container_id]


def _one_container_per_slot(slots: list[PoolContainer]) -> list[str]:
    by_slot: dict[int | None, list[str]] = defaultdict(list)
    containers = get_engine().list_managed(settings.PAAS_INSTANCE)
    running = {info.id for info in containers}
    for info in containers:
        by_slot[info.slot_id].append(info.id)
    found = [f"slot {slot_id} has {len(ids)} containers: {', '.join(sorted(ids))}"
             for slot_id, ids in by_slot.items() if len(ids) > 1]
    found += [f"slot {slot.pk} is {slot.status} but its container {slot.container_id} is gone"
              for slot in slots if slot.status in SETTLED and slot.container_id
              and slot.container_id not in running]
    return found


def _one_pass_at_a_time() -> list[str]:
    """No two finished passes overlapped in time (the last 200 looked at)."""
    passes = list(MonitorPass.objects.filter(finished_at__isnull=False)
                  .order_by("-started_at").values_list("pk", "started_at", "finished_at")
                  [:200])[::-1]
    return [f"monitor passes {a[0]} and {b[0]} ran at the same time"
            for a, b in zip(passes, passes[1:], strict=False) if b[1] < a[2]]


def slots_settled() -> bool:
    """No build in flight and every assigned slot's content pushed: a checkpoint."""
    building = PoolContainer.objects.filter(status__in=BUSY, retry_after__isnull=True)
    stale = PoolContainer.objects.filter(status=S.ASSIGNED,
                                         pushed_version__lt=F("content_version"))
    return not building.exists() and not stale.exists()

"""The invariants, checked on a settled platform from three independent sources: the
database (the driver runs Django against the live stack's database), the engine (``docker
ps`` by the run's label) and HTTP (every slot's URL). Imported after ``django.setup()``.

Checked at every checkpoint and at the end, the product's own ``invariants_check()``
(``pool check``) and, from outside the product:
- every slot converged: none left ``provisioning``/``recycling``/``recovering``; a
  ``failed`` slot (the crash-loop guard can give up on a slot the faults hit again and
  again) must say why;
- an ``idle`` slot's URL serves no user's page (its owner and store: the product's check);
- a settled slot's container is running; no container of ours without a slot;
- an ``assigned`` slot belongs to a user who holds it (an active deployment the user
  knows of), its store holds the user's latest page and its URL serves it;
- each pool has its configured size (more only when the extra slots are all in use).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from deployments.models import Deployment
from pools import content
from pools.invariants import invariants_check
from pools.models import PoolContainer, Runtime, SlotStatus
from tests.soak.actors import MARK, PAGE, Actor, Site, Tally, docker, http_page

S = SlotStatus
BUSY = {S.PROVISIONING, S.RECYCLING, S.RECOVERING}
SETTLED = {S.IDLE, S.ASSIGNED}
FREE = (S.IDLE, S.PROVISIONING)
SERVE_WAIT = 15.0  # an app slot restarts its app after a push: give it time to answer
DUPLICATE_GRACE = 10.0  # two running containers of one slot, longer than a replacement


def slot_row(port: int) -> dict[str, Any]:
    """The slot on ``port`` as the database has it now (context for a violation)."""
    row = PoolContainer.objects.filter(port=port).values(
        "id", "status", "owner__username", "generation", "container_id", "failures",
        "last_error").first()
    return dict(row) if row else {}


def containers(instance: str) -> list[dict[str, str]]:
    """Every container with our instance label, running or not."""
    out = docker("ps", "-a", "--no-trunc", "--filter", f"label=paas.instance={instance}",
                 "--format", '{{.ID}} {{.Label "paas.slot"}} {{.Label "paas.generation"}} '
                 "{{.State}}").stdout
    return [dict(zip(("id", "slot", "generation", "state"), line.split(), strict=True))
            for line in out.splitlines() if line.strip()]


def busy_count() -> int:
    """Builds under way and tasks queued; 0 means only a pass can change things now. A
    slot waiting in back-off is not counted (the settling loop waits for it), nor an
    assigned slot whose push is behind (the pass pushes again; the check reports it)."""
    from django.conf import settings
    from django_q.brokers import get_broker
    from django_q.models import OrmQ

    building = PoolContainer.objects.filter(status__in=BUSY, retry_after__isnull=True)
    # On Redis, the tasks waiting in its list (one taken by a worker is not there).
    queued = get_broker().queue_size() if "redis" in settings.Q_CLUSTER else OrmQ.objects.count()
    return building.count() + int(queued or 0)


def pass_changed() -> bool:
    """Whether the latest reconcile pass did anything (or failed): then another is due."""
    from pools.models import MonitorPass

    last = MonitorPass.objects.order_by("-pk").first()
    if last is None or not last.ok:
        return True
    done = last.summary or {}
    return bool(done.get("orphans_removed") or any(
        done.get(key) for key in ("recovered", "retried", "repushed", "refilled", "trimmed")))


def backing_off() -> float | None:
    """Seconds until the last slot in back-off (a replacement that died soon after its
    rebuild waits before the next one) may be rebuilt by a pass: 0 when that time has
    come and a pass is still needed, None when no slot waits."""
    from django.utils import timezone

    waits = list(PoolContainer.objects.exclude(status=S.FAILED).filter(
        retry_after__isnull=False).values_list("retry_after", flat=True))
    if not waits:
        return None
    return max(0.0, max((w - timezone.now()).total_seconds() for w in waits))


def dead_free_slots(instance: str) -> list[dict[str, Any]]:
    """Idle slots, claimable, whose container is not running (a finding: a user who
    claims one gets a URL that does not answer until the slot is recovered)."""
    running = {c["id"] for c in containers(instance) if c["state"] == "running"}
    return [{"slot": s.pk, "port": s.port, "retry_after": str(s.retry_after),
             "failures": s.failures, "last_error": s.last_error}
            for s in PoolContainer.objects.filter(status=S.IDLE)
            if s.container_id not in running]


def wait_quiet(*, timeout: float) -> bool:
    """Wait until no slot is being built and no task is queued (twice in a row)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if busy_count() == 0 else 0
        if quiet >= 2:
            return True
        time.sleep(0.5)
    return False


class Checker:
    def __init__(self, *, instance: str, tally: Tally,
                 sites: Callable[[], dict[str, list[Site]]]) -> None:
        self.instance = instance
        self.tally = tally
        self.sites = sites  # user → the deployments they hold, as they know them

    def run(self) -> dict[str, int]:
        """Check everything; returns counts for the summary."""
        for problem in invariants_check():
            self.bad("invariant", problem)
        slots = list(PoolContainer.objects.select_related("runtime", "owner"))
        self.check_states(slots)
        self.check_containers(slots)
        self.check_sizes(slots)
        self.check_assignments(slots)
        self.check_pages(slots)
        return {"slots": len(slots),
                "converged": sum(s.status not in BUSY for s in slots),
                "failed": sum(s.status == S.FAILED for s in slots)}

    def bad(self, kind: str, detail: str, **context: Any) -> None:
        self.tally.violation(kind, detail, **context)

    # --- convergence ----------------------------------------------------------------------
    def check_states(self, slots: Iterable[PoolContainer]) -> None:
        for slot in slots:
            where = f"slot {slot.pk} ({slot.runtime.name}:{slot.port}, {slot.status})"
            if slot.status in BUSY:
                self.bad("not-converged", f"{where} still {slot.status}",
                         since=str(slot.status_changed_at), last_error=slot.last_error)
            if slot.status == S.FAILED and not slot.last_error:
                self.bad("failed-without-reason", f"{where} failed with no reason recorded")

    # --- the engine ----------------------------------------------------------------------
    def check_containers(self, slots: Iterable[PoolContainer]) -> None:
        by_slot: dict[str, list[dict[str, str]]] = defaultdict(list)
        for info in containers(self.instance):
            by_slot[info["slot"]].append(info)
        known = set()
        for slot in slots:
            known.add(str(slot.pk))
            found = by_slot.get(str(slot.pk), [])
            where = f"slot {slot.pk} ({slot.runtime.name}:{slot.port}, {slot.status})"
            if slot.status not in SETTLED:
                continue
            mine = [c for c in found if c["id"] == slot.container_id]
            if mine and mine[0]["state"] != "running":
                self.bad("dead-container", f"{where}: its container is {mine[0]['state']}")
        for slot_id, found in by_slot.items():
            if slot_id not in known:
                self.bad("orphan-container", f"{len(found)} container(s) of slot "
                         f"{slot_id!r}, which has no row", containers=found)

    def check_sizes(self, slots: Iterable[PoolContainer]) -> None:
        per_runtime: dict[str, list[PoolContainer]] = defaultdict(list)
        for slot in slots:
            per_runtime[slot.runtime.name].append(slot)
        for runtime in Runtime.objects.filter(enabled=True):
            mine = per_runtime.get(runtime.name, [])
            in_use = sum(s.status != S.IDLE for s in mine)
            expected = max(runtime.pool_size, in_use)
            if len(mine) != expected:
                self.bad("pool-size", f"{runtime.name}: {len(mine)} slots, expected "
                         f"{expected} (size {runtime.pool_size}, {in_use} not idle)",
                         statuses=sorted(s.status for s in mine))

    # --- who holds what ------------------------------------------------------------------
    def check_assignments(self, slots: Iterable[PoolContainer]) -> None:
        held = {(user, site.port): site for user, sites in self.sites().items()
                for site in sites}
        owned = {(s.owner.username, s.port): s for s in slots
                 if s.owner is not None and s.status in (S.ASSIGNED, S.RECOVERING, S.FAILED)}
        for (user, port), slot in owned.items():
            if (user, port) not in held:
                self.bad("unknown-owner", f"slot {slot.pk} on port {port} is {slot.status} "
                         f"to {user}, who holds no deployment there")
        for (user, port), site in held.items():
            if (user, port) not in owned:
                self.bad("lost-slot", f"{user}'s deployment {site.id} on port {port} has no "
                         "slot of theirs", slot=slot_row(port))
        active = set(Deployment.objects.filter(status=Deployment.Status.ACTIVE)
                     .values_list("user__username", "id"))
        believed = {(user, site.id) for (user, _port), site in held.items()}
        for user, dep in sorted(active ^ believed):
            self.bad("deployment-mismatch", f"deployment {dep} of {user} is "
                     f"{'active in the database only' if (user, dep) in active else 'held by the user but not active'}")

    # --- what the URLs serve -----------------------------------------------------------------
    def check_pages(self, slots: Iterable[PoolContainer]) -> None:
        held = {site.port: (user, site) for user, sites in self.sites().items()
                for site in sites}
        for slot in slots:
            if slot.status == S.IDLE:
                self.check_free_page(slot)
            elif slot.status == S.ASSIGNED and slot.port in held:
                user, site = held[slot.port]
                self.check_own_page(slot, user, site)

    def check_free_page(self, slot: PoolContainer) -> None:
        status, body = http_page(slot.port)
        if MARK.search(body):
            self.bad("leak", f"idle slot {slot.pk} on port {slot.port} serves a user's page",
                     body=body[:300], slot=slot_row(slot.port))
        elif status != 200:
            self.bad("idle-not-serving", f"idle slot {slot.pk} on port {slot.port} answers "
                     f"{status or body}")

    def check_own_page(self, slot: PoolContainer, user: str, site: Site) -> None:
        stored = store_page(slot.pk)
        if stored not in site.candidates:
            self.bad("store-not-current", f"{user}'s deployment {site.id}: the store holds "
                     f"{short(stored)}, the user's latest is {short(site.candidates[-1])}")
        deadline = time.monotonic() + SERVE_WAIT
        while True:
            status, body = http_page(slot.port)
            served = serves(status, body, site.candidates)
            foreign = [m for m in MARK.findall(body) if (m[0], int(m[1])) != (user, site.id)]
            if foreign:
                self.bad("leak", f"{user}'s deployment {site.id} on port {slot.port} serves "
                         f"{foreign[0][0]}'s deployment {foreign[0][1]}", body=body[:300])
                return
            if served or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not served:
            self.bad("not-serving-current", f"{user}'s deployment {site.id} on port "
                     f"{slot.port} serves {short(body)} ({status}); expected "
                     f"{short(site.candidates[-1])}", slot=slot_row(slot.port))


def serves(status: int, body: str, candidates: list[str | None]) -> bool:
    """Does the answer show one of the acceptable pages (None: no page of the user)?"""
    for page in candidates:
        if page is None and status and not MARK.search(body):
            return True
        if page is not None and status == 200 and body == page:
            return True
    return False


def store_page(slot_id: int) -> str | None:
    path = Path(content.content_dir(slot_id)) / PAGE
    return path.read_text() if path.exists() else None


def short(page: str | None) -> str:
    if page is None:
        return "no page"
    found = MARK.search(page)
    return f"v{found.group(3)} of {found.group(1)}/{found.group(2)}" if found else repr(page[:60])


# --- during the run ------------------------------------------------------------------------
class InvariantSampler(Actor):
    """Checks, while everything runs, what must hold at every moment, not only when
    settled: a free (idle or provisioning) slot has no owner, an empty store and serves
    no user's page; no slot keeps two running containers. A finding counts only if the
    slot's row is unchanged after the second look, so a claim in between is no alarm."""

    pause_range = (0.5, 1.5)

    def __init__(self, name: str, *, instance: str, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.instance = instance
        self.pairs: dict[tuple[str, ...], float] = {}

    def step(self) -> None:
        for slot in PoolContainer.objects.filter(status__in=FREE):
            self.free_slot(slot)
        self.duplicates()
        self.tally.op("sample")

    def unchanged(self, slot: PoolContainer) -> bool:
        return PoolContainer.objects.filter(
            pk=slot.pk, generation=slot.generation, status=slot.status,
            status_changed_at=slot.status_changed_at).exists()

    def free_slot(self, slot: PoolContainer) -> None:
        where = f"slot {slot.pk} (port {slot.port}, {slot.status}, g{slot.generation})"
        files = content.content_list(slot_id=slot.pk)
        if (slot.owner_id is not None or files) and self.unchanged(slot):
            self.tally.violation("dirty-free-slot", f"{where}: owner {slot.owner_id}, "
                                 f"files {[f['path'] for f in files][:5]}",
                                 page=store_page(slot.pk))
        if slot.status != S.IDLE:
            return
        status, body = http_page(slot.port, timeout=1.0)
        if MARK.search(body) and self.unchanged(slot):
            self.tally.violation("leak", f"{where} serves a user's page", body=body[:300])

    def duplicates(self) -> None:
        running: dict[str, list[str]] = defaultdict(list)
        for info in containers(self.instance):
            if info["state"] == "running":
                running[info["slot"]].append(info["id"][:12])
        now = time.monotonic()
        current = {(slot, *sorted(ids)) for slot, ids in running.items() if len(ids) > 1}
        self.pairs = {pair: self.pairs.get(pair, now) for pair in current}
        for pair, since in self.pairs.items():
            if now - since > DUPLICATE_GRACE:
                self.tally.violation("several-running-containers", f"slot {pair[0]} has "
                                     f"running containers {list(pair[1:])} for "
                                     f"{now - since:.0f}s")
                self.pairs[pair] = float("inf")  # reported once

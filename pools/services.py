"""Pool services: the only place that changes slots.

Every change of a slot's state goes through ``slot_transition``: a compare-and-set on
status *and* generation of a move that ``pools.states.TRANSITIONS`` allows. Claims are
that compare-and-set as one ``UPDATE … RETURNING`` and never touch Docker. A move into a
busy state bumps the generation and queues the build (``slot_rebuild``), which claims
its (slot, generation) so that exactly one builder runs, and stops as soon as it sees
the generation has moved on. Any exception during Docker or file work ends in a recorded
state with its reason (``last_error``). Pool sizes change only through ``pool_converge``
under the pools lease (one at a time across processes).

Two hooks mark the points other features attach to: ``_after_release`` (a slot just left
its owner) and ``_before_idle`` (a slot is about to become claimable).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from pools import content, health, hostnames, metrics
from pools.audit import Source, audit_record, system_actor
from pools.engine import (
    LABEL_GENERATION,
    LABEL_INSTANCE,
    LABEL_PORT,
    LABEL_RUNTIME,
    LABEL_SLOT,
    ContainerInfo,
    ContainerSpec,
    get_engine,
)
from pools.errors import (
    EngineError,
    EngineUnavailable,
    PaasError,
    PoolExhausted,
    PortRangeExhausted,
    RuntimeMisconfigured,
    UnknownRuntime,
)
from pools.lease import LeaseBusy, lease_held
from pools.models import PoolContainer, Recovery, Runtime, SlotStatus
from pools.policy import demand_waiting, idle_announce, pool_targets
from pools.runtimes import RUN_DIR_MB, writable_mounts
from pools.selectors import claimable_q, slots_claimable
from pools.states import (
    BUILDING,
    BUSY,
    HELD,
    IN_USE,
    SETTLED,
    starts_build,
    transition_check,
)

__all__ = ["BUSY", "HELD", "SETTLED"]  # re-exported for callers that test a slot's state

log = logging.getLogger(__name__)

S = SlotStatus
MAX_FAILURES = 3
READY_TIMEOUT = 20.0
PROBE_FIRST_PAUSE = 0.005  # readiness probes back off from this...
PROBE_MAX_PAUSE = 0.05  # ...to this
PROBE_INSPECT_AFTER = 0.1  # a container not answering by then is asked whether it runs
STABLE_SECONDS = 60  # a container that dies sooner after its (re)build counts as a repeat
COMMAND_LEASE_WAIT = 120.0  # a command waits this long for a running pass to finish
TASK_LEASE_WAIT = 60.0  # a queued converge waits this long, then leaves it to the next pass


# --- runtimes ---------------------------------------------------------------------
def runtime_get(*, name: str) -> Runtime:
    try:
        return Runtime.objects.get(name=name)
    except Runtime.DoesNotExist:
        known = ", ".join(Runtime.objects.values_list("name", flat=True))
        raise UnknownRuntime(
            f"unknown runtime '{name}'; choose one of: {known}",
            fields={"runtime": [f"unknown runtime '{name}'"]},
        ) from None


# Runtime rows by name, per process: a launch reads its runtime without a query, and
# checks the row's revision (a database trigger bumps it on every write, whoever makes
# it) inside its own transaction (runtime_checked).
_runtimes: dict[str, Runtime] = {}


def runtime_cached(*, name: str) -> Runtime:
    """The runtime as this process last read it: a launch's own copy, to be checked
    with ``runtime_checked`` before it is relied on. Raises ``UnknownRuntime``."""
    runtime = _runtimes.get(name)
    if runtime is None:
        runtime = _runtimes[name] = runtime_get(name=name)
    return copy.copy(runtime)  # each request its own instance (threads share the dict)


def runtime_checked(*, runtime: Runtime, revision: int | None) -> Runtime:
    """``runtime`` when its row is still at ``revision`` (read by the caller in its
    transaction; None: the row is gone), else the row read again and kept."""
    if revision is not None and revision == runtime.revision:
        return runtime
    _runtimes.pop(runtime.name, None)
    return runtime_cached(name=runtime.name)


def runtime_seed() -> list[Runtime]:
    """Create the built-in runtimes that do not exist yet (existing rows keep the
    operator's edits: the environment only sets initial values)."""
    from pools.runtimes import initial_values

    created = []
    for values in initial_values():
        runtime, was_created = Runtime.objects.get_or_create(
            name=values["name"], defaults={k: v for k, v in values.items() if k != "name"},
        )
        if was_created:
            created.append(runtime)
    return created


def runtime_image(runtime: Runtime) -> str:
    if runtime.image:
        return runtime.image
    from pools.imagebuild import image_tag

    return image_tag(runtime.name)


# --- ports ------------------------------------------------------------------------
def _allocate_port(runtime: Runtime) -> int:
    used = set(
        PoolContainer.objects.filter(port__gte=runtime.port_min, port__lte=runtime.port_max)
        .values_list("port", flat=True)
    )
    for port in range(runtime.port_min, runtime.port_max + 1):
        if port not in used and health.port_is_free(port):
            return port
    raise PortRangeExhausted(
        f"{runtime.name}: no free port left in {runtime.port_min}-{runtime.port_max}; "
        "widen the range (admin or PAAS_PORT_RANGES) or free a port on the host"
    )


# --- the one transition function -------------------------------------------------------
def slot_transition(slot: PoolContainer, *, to: str, queue: bool = True,
                    **changes: Any) -> bool:
    """Move ``slot`` (as read) to ``to``: a compare-and-set on its status and generation,
    so exactly one of several racing callers wins; the others get False. A move into a
    busy state bumps the generation and (``queue``) queues its build after commit; a
    move into ``recycling`` drops the owner and clears the store at once. ``slot`` is
    updated in place when the move is won."""
    transition_check(slot, to)
    generation = slot.generation + 1 if starts_build(to) else slot.generation
    if to == S.RECYCLING:  # the hostnames end with the assignment, too
        changes.update(owner=None, assigned_at=None, **hostnames.HOSTNAMES_CLEARED)
    won = PoolContainer.objects.filter(
        pk=slot.pk, status=slot.status, generation=slot.generation,
    ).update(status=to, generation=generation, status_changed_at=timezone.now(), **changes)
    if not won:
        return False
    was = slot.status
    slot.refresh_from_db()
    log.info("slot %s: %s -> %s (generation %d)", slot.pk, was, to, generation)
    if to == S.FAILED:
        _audit_given_up(slot)
    if starts_build(to):
        Recovery.objects.filter(slot_id=slot.pk, outcome=Recovery.Outcome.RUNNING).exclude(
            generation=generation).update(outcome=Recovery.Outcome.SUPERSEDED,
                                          finished_at=timezone.now())
        if to == S.RECYCLING:  # once the release is committed, so no upload lands after
            transaction.on_commit(lambda: _after_release(slot))
        if queue:
            _enqueue("pools.tasks.slot_rebuild", slot.pk, generation)
    return True


def _audit_given_up(slot: PoolContainer) -> None:
    audit_record(actor=system_actor("back-off"), action="slot.failed", source=Source.SYSTEM,
                 slots=[slot], users=[slot.owner], detail=slot.last_error,
                 result=f"failed after {slot.failures} attempts")


def _after_release(slot: PoolContainer) -> None:
    """The one place where a slot has just left its owner (hook: remove its routes).
    The store is cleared here, before the slot can ever be claimed again; should that
    fail, the build clears it again and the slot cannot turn idle until it is empty."""
    hostnames.routes_sync_later()  # its route goes now, not only before it is idle again
    try:
        content.content_clear(slot_id=slot.pk)
    except OSError as exc:
        log.error("slot %s: clearing the released store failed: %s", slot.pk, exc)
        PoolContainer.objects.filter(pk=slot.pk).update(
            last_error=f"clearing the content store failed: {exc}"[:500])


def _before_idle(slot: PoolContainer) -> None:
    """The one place just before a slot turns idle and claimable (hook: install the
    route of a fresh slug). The store must be empty; anything found is cleared."""
    _store_must_be_empty(slot.pk, when="before turning idle")
    # A fresh slug, routed in Caddy before the slot is claimable: a claim never waits
    # for Caddy, and the new user's hostname answers the moment the API does.
    hostnames.slot_route_before_idle(slot_id=slot.pk, generation=slot.generation)


def _store_must_be_empty(slot_id: int, *, when: str) -> None:
    """A slot without an owner never keeps files: a stray file from any source (a test
    run, a failed clear, a racing upload) is cleared, and logged as the error it is."""
    if content.content_is_empty(slot_id=slot_id):
        return
    log.error("slot %s: content store not empty %s; cleared", slot_id, when)
    content.content_clear(slot_id=slot_id)


# --- creating and sizing pools ----------------------------------------------------
def slot_create(*, runtime: Runtime) -> PoolContainer:
    """A new ``provisioning`` row on the first free port; its container comes from a build."""
    for _attempt in range(10):
        port = _allocate_port(runtime)
        try:
            with transaction.atomic():
                return PoolContainer.objects.create(runtime=runtime, port=port)
        except IntegrityError:
            continue  # a racing creator took this port; take the next one
    raise PortRangeExhausted(f"{runtime.name}: could not reserve a port")


def pool_converge(*, runtime: Runtime, wait: bool = False, trim_now: bool = False,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Bring one pool to its size: create the missing slots, or delete idle slots above
    it (never an assigned one). The caller holds the pools lease (``pool_converge_locked``
    or the reconcile pass), so no two converges count at once. Slots created before a
    ``PortRangeExhausted`` are kept and built; the error is raised afterwards.

    Elastic pools (``PAAS_ELASTIC``) size by ``pools.policy.pool_targets`` instead: idle
    slots above the target go only after ``idle_ttl`` unused, unless ``trim_now`` (an
    operator's explicit resize)."""
    total = runtime.slots.count()
    build_to = trim_to = runtime.pool_size
    idle_before = None
    if settings.PAAS_ELASTIC:
        targets = pool_targets(runtime=runtime, total=total)
        build_to, trim_to = targets.build_to, targets.trim_to
        if not trim_now:
            idle_before = timezone.now() - timedelta(seconds=runtime.idle_ttl)
    created: list[PoolContainer] = []
    error: PaasError | None = None
    try:
        while total + len(created) < build_to:
            created.append(slot_create(runtime=runtime))
    except PaasError as exc:
        error = exc
    removed = slots_remove_idle(runtime=runtime, count=total - trim_to, idle_before=idle_before)
    rolled = slots_roll_image(runtime=runtime)
    _dispatch([(slot.pk, slot.generation) for slot in created], wait=wait, progress=progress)
    _dispatch([(slot.pk, slot.generation) for slot in rolled], wait=wait, progress=progress,
              task="pools.tasks.slot_roll")
    if error is not None:
        raise error
    short = max(0, total - trim_to - removed)
    return {"added": len(created), "removed": removed, "short": short, "slots": created,
            "rolled": len(rolled)}


def slots_outdated(*, runtime: Runtime) -> list[PoolContainer]:
    """Claimable idle slots whose container runs another image than the runtime's now
    (longest idle first). A blank image (built before it was recorded) is unknown and
    left alone; assigned slots keep theirs until released or reinitialized."""
    try:
        image = runtime_image(runtime)
    except Exception:  # no image to roll to: slot_spec reports that on a build
        return []
    return list(slots_claimable(runtime=runtime).exclude(image__in=("", image))
                .order_by("status_changed_at"))


def slots_roll_image(*, runtime: Runtime) -> list[PoolContainer]:
    """Move outdated idle slots to ``provisioning`` (the caller builds them), a few at a
    time: with at most ``step`` slots of the pool being built in all, the pool keeps
    every idle slot but ``step`` claimable, and an elastic pool never rolls below
    ``min_idle - step`` claimable. Launches waiting for a container come first: no
    roll while any wait."""
    outdated = slots_outdated(runtime=runtime)
    if not outdated or demand_waiting(runtime_name=runtime.name):
        return []
    building = runtime.slots.filter(status__in=BUILDING).count()
    # Elastic pools keep min idle - step claimable; a fixed pool's size counts its
    # assigned slots too, so there the step alone bounds the roll.
    floor = max(0, runtime.min_idle - runtime.step) if settings.PAAS_ELASTIC else 0
    spare = slots_claimable(runtime=runtime).count() - floor
    rolled: list[PoolContainer] = []
    for slot in outdated[:max(0, min(runtime.step - building, spare))]:
        if slot_transition(slot, to=S.PROVISIONING, queue=False):
            log.info("slot %s rolls from %s to the runtime's new image", slot, slot.image)
            rolled.append(slot)
    return rolled


def slot_roll(*, slot_id: int, generation: int) -> bool:
    """Build a rolled slot, then take the next step of the roll while any is left: a
    converge now if the lease is free, else the converge holding it (or the next
    reconcile pass) does."""
    built = slot_rebuild(slot_id=slot_id, generation=generation)
    runtime = Runtime.objects.filter(slots__pk=slot_id).first()
    if runtime is not None and slots_outdated(runtime=runtime):
        try:
            pool_converge_locked(runtime_name=runtime.name)
        except LeaseBusy:
            log.info("the roll of %s continues with the next converge", runtime.name)
    return built


def pool_converge_locked(*, runtime_name: str, wait: bool = False, lease_wait: float = 0.0,
                         trim_now: bool = False,
                         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``pool_converge`` under the pools lease (waiting up to ``lease_wait`` for it)."""
    with lease_held(wait=lease_wait) as holder:
        pool_converge_started(runtime_name=runtime_name)
        runtime = runtime_get(name=runtime_name)

        def renew_and_say(line: str) -> None:
            holder.renew()  # a long build keeps the lease
            if progress:
                progress(line)

        return pool_converge(runtime=runtime, wait=wait, trim_now=trim_now,
                             progress=renew_and_say)


def pool_converge_request(*, runtime_name: str) -> None:
    """Ask for a converge of one pool (a task, after commit); never counts by itself.

    At most one requested converge per pool waits in the queue: it counts when it runs,
    so it serves every request made before then. (Forty launches at once used to queue
    forty converges, and the builds they asked for waited behind all of them.) The mark
    expires, so a lost task holds nothing up for long; the reconcile pass is the net."""
    if getattr(settings, "PAAS_TASKS_INLINE", False) or _first_request(runtime_name):
        _enqueue("pools.tasks.pool_converge", runtime_name)


def _first_request(runtime_name: str) -> bool:
    key = _converge_wanted(runtime_name)
    try:
        # Read first: every launch of a burst but the first finds the mark, and the
        # database cache's add() would take the write lock to find it (a transaction,
        # a failing INSERT, a rollback). A mark still there after the launch committed
        # stands for a converge that has not counted yet: it will count this launch.
        if cache.get(key) is not None:
            return False
        return bool(cache.add(key, True, timeout=int(TASK_LEASE_WAIT)))
    except Exception:  # the cache (Redis) is down: queue one more rather than none
        log.warning("converge request for %s: cache unavailable", runtime_name, exc_info=True)
        return True


def pool_converge_started(*, runtime_name: str) -> None:
    """A requested converge is about to count: requests from now on need a new one."""
    try:
        cache.delete(_converge_wanted(runtime_name))
    except Exception:  # the mark expires by itself
        log.warning("converge of %s: cache unavailable", runtime_name, exc_info=True)


def _converge_wanted(runtime_name: str) -> str:
    return f"paas:{settings.PAAS_INSTANCE}:converge-wanted:{runtime_name}"


def pool_add(*, runtime_name: str, count: int, wait: bool = False,
             progress: Callable[[str], None] | None = None) -> list[PoolContainer]:
    """Grow the pool by ``count`` slots: its size becomes the slots it has plus
    ``count``, and it converges to that (now with ``wait``, else in a task). Returns the
    slots created when waiting."""
    runtime = runtime_get(name=runtime_name)
    # Elastic: the size is the idle floor beyond those in use, so it grows by ``count``.
    base = runtime.pool_size if settings.PAAS_ELASTIC else runtime.slots.count()
    Runtime.objects.filter(pk=runtime.pk).update(pool_size=base + count)
    if not wait:
        pool_converge_request(runtime_name=runtime.name)
        return []
    result = pool_converge_locked(runtime_name=runtime.name, wait=True, progress=progress,
                                  lease_wait=COMMAND_LEASE_WAIT)
    return list(result["slots"])


def pool_init(*, runtime_name: str | None = None, wait: bool = True,
              progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Converge every enabled pool (or one) to its size, and build slots whose build
    never started (their task was lost). Returns runtime → number of slots created."""
    names = [runtime_get(name=runtime_name).name] if runtime_name else list(
        Runtime.objects.filter(enabled=True).values_list("name", flat=True))
    created: dict[str, int] = {}
    for name in names:
        result = pool_converge_locked(runtime_name=name, wait=wait, progress=progress,
                                      lease_wait=COMMAND_LEASE_WAIT)
        created[name] = result["added"]
    unstarted = PoolContainer.objects.filter(
        runtime__name__in=names, status__in=BUSY, build_generation__lt=F("generation"))
    _dispatch(list(unstarted.values_list("pk", "generation")), wait=wait, progress=progress)
    return created


def pool_set_size(*, runtime_name: str, size: int, wait: bool = False) -> dict[str, int]:
    """Set the pool's size and converge to it: growing adds slots, shrinking deletes
    idle slots only. Without ``wait`` the converge is only requested (counts are 0)."""
    runtime = runtime_get(name=runtime_name)
    Runtime.objects.filter(pk=runtime.pk).update(pool_size=size)
    if not wait:
        pool_converge_request(runtime_name=runtime.name)
        return {"added": 0, "removed": 0, "short": 0}
    result = pool_converge_locked(runtime_name=runtime.name, wait=True, trim_now=True,
                                  lease_wait=COMMAND_LEASE_WAIT)
    return {key: result[key] for key in ("added", "removed", "short")}


def slots_remove_idle(*, runtime: Runtime, count: int, idle_before: Any = None) -> int:
    """Delete up to ``count`` idle slots (highest ports first) and their containers;
    with ``idle_before``, only those idle since before then, longest-idle first."""
    removed = 0
    idle = runtime.slots.filter(status=S.IDLE).order_by("-port")
    if idle_before is not None:
        idle = idle.filter(status_changed_at__lt=idle_before).order_by("status_changed_at")
    for slot in idle[:max(0, count)]:
        # Conditional delete: a slot claimed (or rebuilt) a moment ago is left alone.
        if PoolContainer.objects.filter(pk=slot.pk, status=S.IDLE,
                                        generation=slot.generation).delete()[0]:
            removed += 1
            log.info("slot %s (%s) removed: the pool is above its size", slot.pk, slot)
            if slot.container_id:
                _enqueue("pools.tasks.container_remove", slot.container_id)
    return removed


# --- claim and release ------------------------------------------------------------
# One statement picks an idle slot of the runtime and takes it: no read-then-write
# window, exactly one winner per slot. PostgreSQL claimers skip rows another one holds;
# SQLite runs one writer at a time. So any idle slot will do, the first the (runtime,
# status) index finds: ``ORDER BY random()`` scanned every idle row of the pool inside
# the write lock (0.13 ms of a claim at 450 idle slots, 1 ms at 2400).
# It is the IDLE -> ASSIGNED move of pools.states, as one compare-and-set on the status.
# An idle slot backing off (``retry_after`` set) has a container known to be dead: it is
# skipped, so nobody gets a URL that does not answer; its retry replaces the container.
_CLAIM_SQL = """
UPDATE pools_poolcontainer
   SET status = 'assigned', owner_id = %s, assigned_at = %s, status_changed_at = %s
 WHERE status = 'idle' AND retry_after IS NULL AND id = (
       SELECT id FROM pools_poolcontainer
        WHERE runtime_id = %s AND status = 'idle' AND retry_after IS NULL
        LIMIT 1 {lock})
RETURNING """ + ", ".join(f'"{field.column}"' for field in PoolContainer._meta.concrete_fields)
# The columns by name, not ``*``: a statement PostgreSQL keeps prepared must not change
# its result's shape when a migration adds a column under a running process.


def slot_claim(*, runtime: Runtime, user: AbstractBaseUser) -> PoolContainer:
    """Hand an idle slot to ``user``: one conditional UPDATE, no Docker call.

    Losing a race to another claimer (the row changed under us) is normal and just
    means trying again. Raises ``PoolExhausted`` when none is
    left. The won slot's store is checked empty (a stat) before the user gets it."""
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = _CLAIM_SQL.format(lock=lock)
    for _attempt in range(8):
        now = timezone.now()
        won = list(PoolContainer.objects.raw(sql, [user.pk, now, now, runtime.pk]))
        if won:
            won[0].runtime = runtime
            _store_must_be_empty(won[0].pk, when="at claim")
            return won[0]
        if not slots_claimable(runtime=runtime).exists():
            break
    raise PoolExhausted(
        f"no idle {runtime.name} container is available right now; try again in a moment"
    )


def slot_release(*, slot: PoolContainer) -> bool:
    """End the slot's assignment: its store is cleared at once and a task replaces its
    container with a fresh one. False if it was not held."""
    for _attempt in range(5):
        slot.refresh_from_db()
        if slot.status not in HELD or slot.owner_id is None:
            return False
        if slot_transition(slot, to=S.RECYCLING):
            return True
        # A concurrent move (a recovery or reinitialize finishing) won the compare-and-set
        # between our read and our write: read again, or the owner keeps a slot whose
        # deployment has already ended (the soak saw it on PostgreSQL).
    return False


def slot_reinitialize(*, slot: PoolContainer, queue: bool = True) -> bool:
    """Destroy and recreate the slot's container; an assigned slot keeps its owner and
    gets the content back. False when a rebuild is already under way. With ``queue``
    False the caller runs the build itself (``slot_rebuild``)."""
    slot.refresh_from_db()
    if slot.status in BUILDING:
        return False
    to = S.RECOVERING if slot.owner_id else S.PROVISIONING
    # An operator's reinitialize is a fresh start: the failure count starts again.
    return slot_transition(slot, to=to, queue=queue, failures=0, retry_after=None)


def slot_recover(*, slot: PoolContainer, reason: str, trigger: str = "reconcile") -> bool:
    """Replace a failed container on the same port (content restored when assigned).

    A replacement that fails again soon after it was built backs off (``retry_after``;
    a delayed task retries when it is due, the reconcile pass should that be lost) and after ``MAX_FAILURES`` the slot ends
    ``failed`` with the reason, instead of churning. Returns True if a rebuild was queued."""
    slot.refresh_from_db()
    if slot.status not in SETTLED:
        return False
    now = timezone.now()
    if slot.retry_after and slot.retry_after > now:
        return False  # backing off; retried when due (slot_retry_due, or the pass)
    failures = slot.failures
    # A repeat failure is a container dying soon after a (re)build nobody has used since;
    # one the user claimed after it was built was fine until now: a fresh failure.
    claimed_since_built = bool(slot.assigned_at and slot.built_at
                               and slot.assigned_at >= slot.built_at)
    recent = (slot.built_at is not None and not claimed_since_built
              and (now - slot.built_at).total_seconds() < STABLE_SECONDS)
    if recent and not slot.retry_after:
        return _back_off(slot, reason)
    if not recent:
        failures = 0
    to = S.RECOVERING if slot.owner_id else S.PROVISIONING
    with transaction.atomic():  # the history row commits with the move, before the task
        if not slot_transition(slot, to=to, failures=failures, retry_after=None,
                               last_error=reason[:500]):
            return False
        Recovery.objects.get_or_create(
            slot_id=slot.pk, generation=slot.generation,
            defaults={"owner_id": slot.owner_id, "runtime_name": slot.runtime.name,
                      "port": slot.port, "reason": reason[:200], "trigger": trigger},
        )
    log.info("recovering %s (%s): %s", slot, trigger, reason)
    audit_record(actor=system_actor(trigger), action="slot.recover", source=Source.SYSTEM,
                 slots=[slot], users=[slot.owner], result="queued", detail=reason)
    return True


def _back_off(slot: PoolContainer, reason: str) -> bool:
    """The container failed again right after it was (re)built: wait, or give up."""
    failures = slot.failures + 1
    log.warning("%s failed again soon after it was rebuilt (%d): %s", slot, failures, reason)
    if failures >= MAX_FAILURES:
        slot_transition(slot, to=S.FAILED, failures=failures, last_error=(
            f"replacement keeps failing ({failures} times): {reason}")[:500])
        return False
    _retry_later(slot, failures=failures, reason=reason)
    return False


def backoff_seconds(failures: int) -> int:
    return min(600, 10 * 2 ** failures)


def _retry_later(slot: PoolContainer, *, failures: int, reason: str) -> None:
    """Record the back-off (if the slot is still as read) and queue its retry for the
    moment it is due: the scheduled pass comes only every minute or two, and an idle slot
    in back-off is not claimable meanwhile. The pass still retries it should this be lost."""
    retry_after = timezone.now() + timedelta(seconds=backoff_seconds(failures))
    if PoolContainer.objects.filter(pk=slot.pk, generation=slot.generation,
                                    status=slot.status).update(
            failures=failures, last_error=reason[:500], retry_after=retry_after):
        _enqueue_at(retry_after, "pools.tasks.slot_retry_due", slot.pk, slot.generation)


def slot_retry_due(*, slot_id: int, generation: int) -> bool:
    """Retry a slot whose back-off has ended (the delayed task ``_retry_later`` queued).
    Idempotent: a slot that moved on (a new generation, a retry already made, a back-off
    not yet over) is left alone. True when a rebuild was started."""
    slot = PoolContainer.objects.select_related("runtime").filter(
        pk=slot_id, generation=generation).first()
    if slot is None or slot.retry_after is None or slot.retry_after > timezone.now():
        return False
    if slot.status in SETTLED:  # a container that died right after its build
        return slot_recover(slot=slot, reason=slot.last_error or "retry after back-off",
                            trigger="backoff")
    return slot_retry(slot=slot)  # a build that failed


def slot_retry(*, slot: PoolContainer) -> bool:
    """Rebuild a slot stuck in a busy state (its build failed or its worker died) under
    a new generation, so a half-made container of the old one is discarded."""
    if slot.status not in BUSY:
        return False
    return slot_transition(slot, to=slot.status, retry_after=None)


# --- the Docker work --------------------------------------------------------------
def slot_rebuild(*, slot_id: int, generation: int) -> bool:
    """Give the slot a fresh container for ``generation``. Exactly one builder runs per
    (slot, generation): a second run (a retried task, a command racing a worker) stops
    at once, and so does one whose generation moved on. Any exception is recorded on the
    slot. Returns True when this call finished the slot."""
    slot = PoolContainer.objects.select_related("runtime").filter(pk=slot_id).first()
    if slot is None or slot.generation != generation or slot.status not in BUSY:
        return False  # superseded, deleted, or already done
    if not _build_claim(slot):
        return False  # another builder has this generation
    try:
        return _build(slot)
    finally:
        # The old container was only stopped: it goes now that the slot has settled
        # (after the user is served again), or the build has failed (a failed one's
        # container is kept for its logs until the next build).
        _stale_remove_safely(slot)


def _build(slot: PoolContainer) -> bool:
    try:
        info = _build_container(slot)
        problem = _wait_ready(slot, info)
        if not problem and slot.status != S.RECOVERING:
            _before_idle(slot)
    except Exception as exc:  # Docker, the image, the file system: recorded, never silent
        log.exception("building %s failed", slot)
        _record_failure(slot, _describe(exc), permanent=isinstance(exc, RuntimeMisconfigured))
        return False
    if problem:
        _record_failure(slot, problem)
        return False
    return _finish(slot, info)


def _build_claim(slot: PoolContainer) -> bool:
    """Claim the build of the slot's generation (a compare-and-set). A claim older than
    the task timeout belongs to a builder that is gone (django-q2 ends a task by then,
    and hands it out again after its retry time): that one may be taken over."""
    now = timezone.now()
    given_up = now - timedelta(seconds=settings.Q_CLUSTER.get("timeout", 120))
    return bool(PoolContainer.objects.filter(
        Q(build_generation__lt=slot.generation) | Q(build_started_at__lt=given_up),
        pk=slot.pk, generation=slot.generation, status=slot.status,
    ).update(build_generation=slot.generation, build_started_at=now))


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PaasError) else f"{type(exc).__name__}: {exc}"


def _build_container(slot: PoolContainer) -> ContainerInfo:
    """Start the slot's new container. The old one only has to give up the port first:
    it is stopped (a kill, fast) while the new one is created (``Engine.replace``), and
    removed once the build is over (``slot_rebuild``), off the path a user waits on.
    Should the start still be
    refused (a container of a lost build holds the port), every older container of the
    slot is removed and the start tried once more."""
    engine = get_engine()
    if slot.owner_id is None:
        content.content_clear(slot_id=slot.pk)  # the next user never sees these files
    spec = slot_spec(slot)
    slot.image = spec.image  # recorded by _finish: the roll compares it with the runtime's
    try:
        created = (engine.replace(slot.container_id, spec) if slot.container_id
                   else engine.create(spec))
    except EngineUnavailable:
        raise
    except EngineError as exc:
        log.info("starting %s refused (%s); removing its older containers first", slot, exc)
        _stale_remove(slot)
        created = engine.create(spec)
    if settings.PAAS_FAULT_REBUILD_PAUSE:
        time.sleep(settings.PAAS_FAULT_REBUILD_PAUSE)
    return created


def _stale_remove(slot: PoolContainer) -> None:
    """Remove the slot's containers of earlier generations (the one its build stopped,
    any a lost build left). Never a newer one: that belongs to a build that superseded
    this one."""
    engine = get_engine()
    for info in engine.list_managed(settings.PAAS_INSTANCE, slot=str(slot.pk)):
        if info.generation is None or info.generation < slot.generation:
            engine.remove(info.id)


def _stale_remove_safely(slot: PoolContainer) -> None:
    """``_stale_remove`` at the end of a build: a failure changes nothing for the slot.
    What is left behind (also when the task dies before this point) the next build of
    the slot removes, or the reconcile pass (an old generation of a slot not being built)."""
    try:
        _stale_remove(slot)
    except Exception as exc:
        log.warning("removing the old containers of %s failed (the pass retries): %s",
                    slot, exc)


def _finish(slot: PoolContainer, created: ContainerInfo) -> bool:
    """The new container is ready: settle the slot (a compare-and-set like any move).
    A slot that moved on meanwhile gets its container removed again."""
    recovering = slot.status == S.RECOVERING
    moved = created.node_addr != slot.node_addr  # on a swarm: its route must follow
    now = timezone.now()
    # A new container serves an empty content root: an owner's store must be pushed.
    pushed = 0 if recovering else F("content_version")
    # On a swarm the slot records the node its task runs on (its URL and probes use it).
    if not slot_transition(slot, to=S.ASSIGNED if recovering else S.IDLE,
                           container_id=created.id, node_id=created.node_id,
                           node_addr=created.node_addr, built_at=now, healthy=True,
                           health_checked_at=now, retry_after=None, last_error="",
                           pushed_version=pushed, image=slot.image):
        get_engine().remove(created.id)
        return False
    if not recovering:
        idle_announce(runtime_name=slot.runtime.name)  # a waiting launch takes it now
    if moved and recovering:
        hostnames.routes_sync_later()  # the same hostname, now to the new node
    if recovering:
        # Pushed after the slot is assigned again, so an upload that landed in the store
        # while we were recovering reaches the container too (by this push or its own).
        slot_content_sync_safely(slot=slot)
    # Recorded once the owner's files are served again: that is when it is over for them.
    _recovery_finish(slot.pk, slot.generation, Recovery.Outcome.SUCCEEDED)
    return True


def _recovery_finish(slot_id: int, generation: int, outcome: str, detail: str = "") -> None:
    if Recovery.objects.filter(slot_id=slot_id, generation=generation,
                               outcome=Recovery.Outcome.RUNNING).update(
            outcome=outcome, finished_at=timezone.now(), detail=detail[:1000]):
        metrics.recovery_observed(slot_id=slot_id, generation=generation)


def _wait_ready(slot: PoolContainer, created: ContainerInfo) -> str:
    """Wait until the port answers HTTP; "" when ready, else why not. An assigned app
    slot only has to be running: the user's app may be down, which is the user's
    business, not a reason to hold the slot. A container that exits stops the wait."""
    check_http = not (slot.status == S.RECOVERING and slot.runtime.app_runtime)
    deadline = time.monotonic() + READY_TIMEOUT
    # A fresh web server answers within tens of milliseconds: the container is asked
    # whether it still runs only if it does not (at once when running is all we need).
    next_inspect = time.monotonic() + (PROBE_INSPECT_AFTER if check_http else 0.0)
    pause = PROBE_FIRST_PAUSE
    while time.monotonic() < deadline:
        # On a swarm the port answers on the node that runs the task.
        if check_http and health.http_answers(slot.port, timeout=0.5, host=created.node_addr):
            return ""
        if time.monotonic() >= next_inspect:
            info = get_engine().inspect(created.id)
            if info is None or not info.running:
                state = f"exited with code {info.exit_code}" if info else "is gone"
                return f"the new container {state}"
            if not check_http:
                return ""
            next_inspect = time.monotonic() + 0.5
        # Short pauses first: a web server in a fresh container listens within tens of
        # milliseconds, and every pause is added to a release or a recovery.
        time.sleep(pause)
        pause = min(pause * 2, PROBE_MAX_PAUSE)
    return f"the new container did not answer HTTP within {READY_TIMEOUT:.0f}s"


def _record_failure(slot: PoolContainer, reason: str, *, permanent: bool = False) -> None:
    """A build failed: retry later with back-off; give up (``failed``) after
    MAX_FAILURES, or at once when retrying cannot help (a runtime without an image)."""
    failures = slot.failures + 1
    log.warning("building %s failed (%d): %s", slot, failures, reason)
    _recovery_finish(slot.pk, slot.generation, Recovery.Outcome.FAILED, reason)
    if permanent or failures >= MAX_FAILURES:
        slot_transition(slot, to=S.FAILED, failures=failures, last_error=reason[:500],
                        retry_after=None)
        return
    _retry_later(slot, failures=failures, reason=reason)


def slot_spec(slot: PoolContainer) -> ContainerSpec:
    runtime = slot.runtime
    try:
        image = runtime_image(runtime)
    except Exception as exc:  # e.g. a runtime added in the admin with no image
        raise RuntimeMisconfigured(
            f"no image for runtime '{runtime.name}' ({exc}); set its image in the admin, "
            "then reinitialize the slot") from exc
    ensure_network()
    return ContainerSpec(
        name=slot.container_name,
        image=image,
        labels={
            LABEL_INSTANCE: settings.PAAS_INSTANCE,
            LABEL_RUNTIME: runtime.name,
            LABEL_PORT: str(slot.port),
            LABEL_SLOT: str(slot.pk),
            LABEL_GENERATION: str(slot.generation),
        },
        internal_port=runtime.internal_port,
        host_port=slot.port,
        bind_ip=settings.PAAS_BIND_IP,
        network=network_name(),
        environment={"PORT": str(runtime.internal_port), "PAAS_RUNTIME": runtime.name,
                     "PAAS_CONTENT_ROOT": runtime.content_root},
        # Files written inside live in tmpfs, i.e. memory: the app keeps its own share.
        mem_limit_mb=runtime.mem_limit_mb + settings.PAAS_CONTAINER_DISK_MB + RUN_DIR_MB,
        cpus=runtime.cpus,
        pids_limit=runtime.pids_limit,
        cap_add=runtime.capabilities,
        read_only=True,
        tmpfs=writable_mounts(runtime_name=runtime.name, content_root=runtime.content_root,
                              size_mb=settings.PAAS_CONTAINER_DISK_MB),
    )


def network_name() -> str:
    return f"paas-{settings.PAAS_INSTANCE}"


_networks_ready: set[str] = set()
# Docker happily creates two networks of one name (and then refuses to start containers
# on either: "ambiguous"), so the parallel creators of one process check-and-create in turn.
_network_lock = threading.Lock()


def ensure_network() -> None:
    name = network_name()
    with _network_lock:
        if name not in _networks_ready:
            get_engine().ensure_network(name, {LABEL_INSTANCE: settings.PAAS_INSTANCE})
            _networks_ready.add(name)


# --- content -------------------------------------------------------------------------
def content_push(*, slot: PoolContainer, container_id: str) -> None:
    """Make the container's content root an exact copy of the slot's store, then tell
    an app runtime to restart its app."""
    engine = get_engine()
    root = slot.runtime.content_root
    engine.put_archive(container_id, root, content.content_tar(slot_id=slot.pk), replace=True)
    if slot.runtime.app_runtime:
        engine.signal(container_id, "SIGHUP")


def slot_content_changed(*, slot_id: int) -> None:
    """The slot's store changed (an upload, a delete): its content version moves on, so
    the next push is known to be needed and an older one is known to be stale."""
    PoolContainer.objects.filter(pk=slot_id).update(content_version=F("content_version") + 1)


def slot_content_sync(*, slot: PoolContainer) -> bool:
    """Push the store into an assigned slot's container, newest content winning.

    Pushes of one slot are serialized across processes (a lock file); under it the slot
    is read afresh, and a push is skipped when the container already serves this
    content version or newer (a later push already carried it). While the slot is being
    recovered the store alone is updated: the recovery pushes it. Returns True if pushed."""
    with content.push_lock(slot.pk):
        fresh = PoolContainer.objects.select_related("runtime").filter(pk=slot.pk).first()
        if fresh is None or fresh.status != S.ASSIGNED or not fresh.container_id:
            return False
        version = fresh.content_version
        if fresh.pushed_version >= version and version:
            return False
        content_push(slot=fresh, container_id=fresh.container_id)
        PoolContainer.objects.filter(pk=slot.pk, container_id=fresh.container_id,
                                     pushed_version__lt=version).update(pushed_version=version)
    return True


def slot_content_sync_safely(*, slot: PoolContainer) -> bool:
    """``slot_content_sync`` for background work: a failure is recorded on the slot (its
    content stays marked stale, and the reconcile pass pushes again)."""
    try:
        return slot_content_sync(slot=slot)
    except Exception as exc:
        log.warning("pushing content into %s failed: %s", slot, exc)
        PoolContainer.objects.filter(pk=slot.pk).update(
            last_error=f"content push failed: {_describe(exc)}"[:500])
        return False


def slot_rx_bytes(*, slot: PoolContainer) -> int | None:
    """Bytes the slot's container has received since it started (requests reaching
    it); None when it has none."""
    if not slot.container_id:
        return None
    return get_engine().network_rx_bytes(slot.container_id)


def slot_logs(*, slot: PoolContainer, tail: int = 100) -> str:
    if not slot.container_id:
        return ""
    return get_engine().logs(slot.container_id, tail=tail)


def slot_restart(*, slot: PoolContainer) -> None:
    """Restart the user's app (python/node) or reload the web server (nginx/apache)."""
    if slot.container_id:
        get_engine().signal(slot.container_id, "SIGHUP")


def container_remove(*, container_id: str) -> None:
    get_engine().remove(container_id)


# --- status -----------------------------------------------------------------------
def pool_counts() -> list[dict[str, Any]]:
    """Per runtime: idle, assigned, failed, busy (being built) and total slots, and the
    slots with a problem (failed, backing off, content not pushed) and why."""
    rows = Runtime.objects.annotate(
        idle=Count("slots", filter=claimable_q("slots__")),
        assigned=Count("slots", filter=Q(slots__status__in=IN_USE)),
        failed=Count("slots", filter=Q(slots__status=S.FAILED)),
        busy=Count("slots", filter=Q(slots__status__in=BUILDING)),
        total=Count("slots"),
    ).order_by("port_min")
    problems = _problems()
    return [
        {"runtime": r.name, "idle": r.idle, "assigned": r.assigned, "failed": r.failed,
         "busy": r.busy, "total": r.total, "pool_size": r.pool_size, "enabled": r.enabled,
         "ports": f"{r.port_min}-{r.port_max}", "problems": problems.get(r.pk, [])}
        for r in rows
    ]


def _problems() -> dict[int, list[dict[str, object]]]:
    found: dict[int, list[dict[str, object]]] = {}
    troubled = PoolContainer.objects.filter(
        Q(status=S.FAILED) | Q(status__in=BUSY, retry_after__isnull=False)
        | Q(status=S.ASSIGNED, pushed_version__lt=F("content_version"))
    ).order_by("port")
    for slot in troubled:
        found.setdefault(slot.runtime_id, []).append(
            {"slot": slot.pk, "port": slot.port, "status": slot.status,
             "error": slot.last_error or "content not pushed yet"})
    return found


# --- running the Docker work ------------------------------------------------------
def _enqueue(func: str, *args: object) -> None:
    """Run ``func`` in a django-q2 task once the current transaction commits (inline
    when ``PAAS_TASKS_INLINE`` is set: unit and integration tests)."""
    def send() -> None:
        if getattr(settings, "PAAS_TASKS_INLINE", False):
            _call_task(func, *args)
        else:
            from django_q.tasks import async_task

            async_task(func, *args)

    transaction.on_commit(send)


def _enqueue_at(when: datetime, func: str, *args: object) -> None:
    """Run ``func`` in a django-q2 task at ``when`` (a one-off schedule, part of the
    current transaction). Never inline: a test runs the scheduled task itself."""
    from django_q.models import Schedule
    from django_q.tasks import schedule

    schedule(func, *args, schedule_type=Schedule.ONCE, next_run=when)


def _call_task(func: str, *args: object) -> None:
    from django.utils.module_loading import import_string

    try:
        import_string(func)(*args)
    except Exception:  # a worker logs a task's failure the same way
        log.exception("task %s%s failed", func, args)


def slot_rebuild_now(*, slots: list[PoolContainer],
                     progress: Callable[[str], None] | None = None) -> None:
    """Build these slots (just moved into a busy state without a queued task) in this
    process, in parallel, with progress: what the commands use."""
    _dispatch([(slot.pk, slot.generation) for slot in slots], wait=True, progress=progress)


def _dispatch(jobs: list[tuple[int, int]], *, wait: bool,
              progress: Callable[[str], None] | None,
              task: str = "pools.tasks.slot_rebuild") -> None:
    """Build slots now (``wait``, bounded parallel, for commands) or in tasks."""
    if not wait:
        for slot_id, generation in jobs:
            _enqueue(task, slot_id, generation)
        return
    started = time.monotonic()

    def work(job: tuple[int, int]) -> tuple[int, bool]:
        close_old_connections()
        try:
            return job[0], slot_rebuild(slot_id=job[0], generation=job[1])
        except Exception:
            log.exception("building slot %s failed", job[0])
            return job[0], False
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=max(1, settings.PAAS_CREATE_PARALLEL)) as pool:
        for done, (slot_id, ok) in enumerate(pool.map(work, jobs), start=1):
            if progress:
                progress(f"[{done}/{len(jobs)}] slot {slot_id} {_outcome(slot_id, ok)} "
                         f"({time.monotonic() - started:.1f}s)")


def _outcome(slot_id: int, ok: bool) -> str:
    if ok:
        return "ready"
    slot = PoolContainer.objects.filter(pk=slot_id).first()
    return f"not ready: {slot.last_error}" if slot and slot.last_error else "not ready"

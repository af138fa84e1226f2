"""Pool services: the only place that changes slots.

Claims are one conditional UPDATE and never touch Docker. Every Docker-side change of a
slot first bumps its generation with a compare-and-set; the Docker work then runs in a
task (``slot_rebuild``) that stops as soon as it sees the generation has moved on. So a
release, a recovery, an operator and the reconcile pass can race on one slot and exactly
one container per slot remains.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from pools import content, health
from pools.engine import (
    LABEL_GENERATION,
    LABEL_INSTANCE,
    LABEL_PORT,
    LABEL_RUNTIME,
    LABEL_SLOT,
    ContainerSpec,
    get_engine,
)
from pools.errors import EngineError, PoolExhausted, PortRangeExhausted, UnknownRuntime
from pools.models import PoolContainer, Recovery, Runtime, SlotStatus
from pools.runtimes import RUN_DIR_MB, writable_mounts

log = logging.getLogger(__name__)

S = SlotStatus
BUSY = (S.PROVISIONING, S.RECYCLING, S.RECOVERING)  # a rebuild task owns the slot
HELD = (S.ASSIGNED, S.RECOVERING, S.FAILED)  # states in which a slot may have an owner
MAX_FAILURES = 3
READY_TIMEOUT = 20.0
STABLE_SECONDS = 60  # a container that dies sooner after its (re)build counts as a repeat


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


# --- creating and sizing pools ----------------------------------------------------
def slot_create(*, runtime: Runtime) -> PoolContainer:
    """A new ``provisioning`` row on the first free port; its container comes from a task."""
    for _attempt in range(10):
        port = _allocate_port(runtime)
        try:
            with transaction.atomic():
                return PoolContainer.objects.create(runtime=runtime, port=port)
        except IntegrityError:
            continue  # a racing creator took this port; take the next one
    raise PortRangeExhausted(f"{runtime.name}: could not reserve a port")


def pool_add(*, runtime_name: str, count: int, wait: bool = False,
             progress: Callable[[str], None] | None = None) -> list[PoolContainer]:
    runtime = runtime_get(name=runtime_name)
    slots = [slot_create(runtime=runtime) for _ in range(count)]
    _dispatch([(slot.pk, slot.generation) for slot in slots], wait=wait, progress=progress)
    return slots


def pool_init(*, runtime_name: str | None = None, wait: bool = True,
              progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Fill every enabled pool (or one) to its size and finish slots left half-built.
    Returns runtime → number of slots created."""
    runtimes = [runtime_get(name=runtime_name)] if runtime_name else list(
        Runtime.objects.filter(enabled=True)
    )
    created: dict[str, int] = {}
    jobs: list[tuple[int, int]] = []
    for runtime in runtimes:
        missing = max(0, runtime.pool_size - runtime.slots.count())
        jobs += [(slot.pk, slot.generation) for slot in
                 (slot_create(runtime=runtime) for _ in range(missing))]
        jobs += list(runtime.slots.filter(status__in=BUSY).values_list("pk", "generation"))
        created[runtime.name] = missing
    _dispatch(sorted(set(jobs)), wait=wait, progress=progress)
    return created


def pool_set_size(*, runtime_name: str, size: int, wait: bool = False) -> dict[str, int]:
    """Grow by adding slots; shrink by deleting idle slots only (never an assigned one)."""
    runtime = runtime_get(name=runtime_name)
    Runtime.objects.filter(pk=runtime.pk).update(pool_size=size)
    total = runtime.slots.count()
    if size > total:
        return {"added": len(pool_add(runtime_name=runtime.name, count=size - total, wait=wait)),
                "removed": 0, "short": 0}
    removed = slots_remove_idle(runtime=runtime, count=total - size)
    return {"added": 0, "removed": removed, "short": total - size - removed}


def slots_remove_idle(*, runtime: Runtime, count: int) -> int:
    """Delete up to ``count`` idle slots (highest ports first) and their containers."""
    removed = 0
    for slot in runtime.slots.filter(status=S.IDLE).order_by("-port")[:count]:
        # Conditional delete: a slot claimed a moment ago is left alone.
        if PoolContainer.objects.filter(pk=slot.pk, status=S.IDLE).delete()[0]:
            removed += 1
            if slot.container_id:
                _enqueue("pools.tasks.container_remove", slot.container_id)
    return removed


# --- claim and release ------------------------------------------------------------
# One statement picks a random idle slot of the runtime and takes it: no read-then-write
# window, exactly one winner per slot. PostgreSQL claimers skip rows another one holds.
_CLAIM_SQL = """
UPDATE pools_poolcontainer
   SET status = 'assigned', owner_id = %s, assigned_at = %s, status_changed_at = %s
 WHERE status = 'idle' AND id = (
       SELECT id FROM pools_poolcontainer
        WHERE runtime_id = %s AND status = 'idle'
        ORDER BY random() LIMIT 1 {lock})
RETURNING *
"""


def slot_claim(*, runtime: Runtime, user: AbstractBaseUser) -> PoolContainer:
    """Hand an idle slot to ``user``: one conditional UPDATE, no Docker call.

    Racing claimers each take a random idle slot; losing a race (the row changed under
    us) is normal and just means trying again. Raises ``PoolExhausted`` when none is
    left."""
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = _CLAIM_SQL.format(lock=lock)
    for _attempt in range(8):
        now = timezone.now()
        won = list(PoolContainer.objects.raw(sql, [user.pk, now, now, runtime.pk]))
        if won:
            won[0].runtime = runtime
            return won[0]
        if not PoolContainer.objects.filter(runtime=runtime, status=S.IDLE).exists():
            break
    raise PoolExhausted(
        f"no idle {runtime.name} container is available right now; try again in a moment"
    )


def slot_release(*, slot: PoolContainer) -> bool:
    """End the slot's assignment: it goes ``recycling`` and a task replaces its container
    with a fresh one (the user's files are deleted). False if it was not held."""
    slot.refresh_from_db()
    if slot.status not in HELD or slot.owner_id is None:
        return False
    return _bump(slot, statuses=HELD, new_status=S.RECYCLING, owner=None, assigned_at=None)


def slot_reinitialize(*, slot: PoolContainer) -> bool:
    """Destroy and recreate the slot's container; an assigned slot keeps its owner and
    gets the content back. False when a rebuild is already under way."""
    slot.refresh_from_db()
    if slot.status in (S.PROVISIONING, S.RECYCLING):
        return False
    new_status = S.RECOVERING if slot.owner_id else S.PROVISIONING
    # An operator's reinitialize is a fresh start: the failure count starts again.
    return _bump(slot, statuses=(slot.status,), new_status=new_status, failures=0,
                 retry_after=None)


def slot_recover(*, slot: PoolContainer, reason: str, trigger: str = "reconcile") -> bool:
    """Replace a failed container on the same port (content restored when assigned).

    A replacement that fails again soon after it was built backs off (``retry_after``;
    the reconcile pass retries when it is due) and after ``MAX_FAILURES`` the slot ends
    ``failed`` with the reason, instead of churning. Returns True if a rebuild was queued."""
    slot.refresh_from_db()
    if slot.status not in (S.IDLE, S.ASSIGNED):
        return False
    now = timezone.now()
    if slot.retry_after and slot.retry_after > now:
        return False  # backing off; the pass after retry_after tries again
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
    new_status = S.RECOVERING if slot.owner_id else S.PROVISIONING
    with transaction.atomic():  # the history row commits with the bump, before the task
        if not _bump(slot, statuses=(slot.status,), new_status=new_status,
                     failures=failures, retry_after=None, last_error=reason[:500]):
            return False
        Recovery.objects.get_or_create(
            slot_id=slot.pk, generation=slot.generation + 1,
            defaults={"owner_id": slot.owner_id, "runtime_name": slot.runtime.name,
                      "port": slot.port, "reason": reason[:200], "trigger": trigger},
        )
    log.info("recovering %s (%s): %s", slot, trigger, reason)
    return True


def _back_off(slot: PoolContainer, reason: str) -> bool:
    """The container failed again right after it was (re)built: wait, or give up."""
    failures = slot.failures + 1
    changes: dict[str, object] = {"failures": failures, "last_error": reason[:500]}
    if failures >= MAX_FAILURES:
        changes.update(status=S.FAILED, status_changed_at=timezone.now(),
                       last_error=f"replacement keeps failing ({failures} times): {reason}"[:500])
    else:
        changes["retry_after"] = timezone.now() + timedelta(seconds=backoff_seconds(failures))
    PoolContainer.objects.filter(pk=slot.pk, generation=slot.generation,
                                 status=slot.status).update(**changes)
    log.warning("%s failed again soon after it was rebuilt (%d): %s", slot, failures, reason)
    return False


def backoff_seconds(failures: int) -> int:
    return min(600, 10 * 2 ** failures)


def slot_retry(*, slot: PoolContainer) -> bool:
    """Rebuild a slot stuck in a busy state (its task failed or its worker died) under a
    new generation, so a half-made container of the old one is discarded."""
    if slot.status not in BUSY:
        return False
    return _bump(slot, statuses=(slot.status,), new_status=slot.status, retry_after=None)


def _bump(slot: PoolContainer, *, statuses: Iterable[str], new_status: str,
          **changes: object) -> bool:
    """Compare-and-set: move to ``new_status`` with generation + 1 only if nobody else
    changed the slot since we read it; then queue the Docker work for after commit."""
    generation = slot.generation
    won = PoolContainer.objects.filter(
        pk=slot.pk, generation=generation, status__in=list(statuses),
    ).update(generation=generation + 1, status=new_status,
             status_changed_at=timezone.now(), **changes)
    if won:
        Recovery.objects.filter(slot_id=slot.pk, outcome=Recovery.Outcome.RUNNING).update(
            outcome=Recovery.Outcome.SUPERSEDED, finished_at=timezone.now())
        _enqueue("pools.tasks.slot_rebuild", slot.pk, generation + 1)
    return bool(won)


# --- the Docker work --------------------------------------------------------------
def slot_rebuild(*, slot_id: int, generation: int) -> bool:
    """Give the slot a fresh container for ``generation`` (idempotent; stops when the
    generation moved on). Returns True when this call finished the slot."""
    slot = PoolContainer.objects.select_related("runtime").filter(pk=slot_id).first()
    if slot is None or slot.generation != generation or slot.status not in BUSY:
        return False  # superseded, deleted, or already done by an earlier run
    try:
        container_id = _replace_container(slot)
    except EngineError as exc:
        _record_failure(slot, str(exc))
        raise
    if settings.PAAS_FAULT_REBUILD_PAUSE:
        time.sleep(settings.PAAS_FAULT_REBUILD_PAUSE)
    final = S.ASSIGNED if slot.status == S.RECOVERING else S.IDLE
    problem = _wait_ready(slot, final, container_id)
    if problem:
        _record_failure(slot, problem)
        return False
    now = timezone.now()
    won = PoolContainer.objects.filter(pk=slot_id, generation=generation, status=slot.status).update(
        container_id=container_id, status=final, status_changed_at=now, built_at=now,
        healthy=True,
        health_checked_at=now, retry_after=None, last_error="",
    )
    if not won:  # someone moved the slot on while we worked: our container is stale
        get_engine().remove(container_id)
        return False
    _recovery_finish(slot_id, generation, Recovery.Outcome.SUCCEEDED)
    if final == S.ASSIGNED:
        # Pushed after the slot is assigned again, so an upload that landed in the store
        # while we were recovering reaches the container too (by this push or its own).
        slot.refresh_from_db()
        slot_content_sync(slot=slot)
    return True


def _recovery_finish(slot_id: int, generation: int, outcome: str, detail: str = "") -> None:
    Recovery.objects.filter(slot_id=slot_id, generation=generation,
                            outcome=Recovery.Outcome.RUNNING).update(
        outcome=outcome, finished_at=timezone.now(), detail=detail[:1000])


def _replace_container(slot: PoolContainer) -> str:
    engine = get_engine()
    for stale in engine.list_managed(settings.PAAS_INSTANCE, slot=str(slot.pk)):
        if stale.generation != slot.generation:
            engine.remove(stale.id)
    if slot.status == S.RECYCLING:
        content.content_clear(slot_id=slot.pk)  # the next user never sees these files
    return engine.create(slot_spec(slot)).id


def _wait_ready(slot: PoolContainer, final: str, container_id: str) -> str:
    """Wait until the port answers HTTP; "" when ready, else why not. An assigned app
    slot only has to be running: the user's app may be down, which is the user's
    business, not a reason to hold the slot. A container that exits stops the wait."""
    check_http = not (final == S.ASSIGNED and slot.runtime.app_runtime)
    deadline = time.monotonic() + READY_TIMEOUT
    next_inspect = 0.0
    while time.monotonic() < deadline:
        if check_http and health.http_answers(slot.port, timeout=0.5):
            return ""
        if time.monotonic() >= next_inspect:
            info = get_engine().inspect(container_id)
            if info is None or not info.running:
                state = f"exited with code {info.exit_code}" if info else "is gone"
                return f"the new container {state}"
            if not check_http:
                return ""
            next_inspect = time.monotonic() + 0.5
        time.sleep(0.05)
    return f"the new container did not answer HTTP within {READY_TIMEOUT:.0f}s"


def _record_failure(slot: PoolContainer, reason: str) -> None:
    """A rebuild failed: retry later with back-off; give up after MAX_FAILURES."""
    failures = slot.failures + 1
    changes: dict[str, object] = {
        "failures": failures, "last_error": reason[:500],
        "retry_after": timezone.now() + timedelta(seconds=backoff_seconds(failures)),
    }
    if failures >= MAX_FAILURES:
        changes.update(status=S.FAILED, status_changed_at=timezone.now())
    PoolContainer.objects.filter(pk=slot.pk, generation=slot.generation).update(**changes)
    _recovery_finish(slot.pk, slot.generation, Recovery.Outcome.FAILED, reason)
    log.warning("rebuilding %s failed (%d): %s", slot, failures, reason)


def slot_spec(slot: PoolContainer) -> ContainerSpec:
    runtime = slot.runtime
    ensure_network()
    return ContainerSpec(
        name=slot.container_name,
        image=runtime_image(runtime),
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


def content_push(*, slot: PoolContainer, container_id: str) -> None:
    """Make the container's content root an exact copy of the slot's store, then tell
    an app runtime to restart its app."""
    engine = get_engine()
    root = slot.runtime.content_root
    engine.exec(container_id, ["find", root, "-mindepth", "1", "-delete"], user="1000")
    engine.put_archive(container_id, root, content.content_tar(slot_id=slot.pk))
    if slot.runtime.app_runtime:
        engine.signal(container_id, "SIGHUP")


def slot_content_sync(*, slot: PoolContainer) -> bool:
    """Push the store into an assigned slot's container. While the slot is being
    recovered the store alone is updated: the recovery pushes it. Returns True if pushed."""
    if slot.status != S.ASSIGNED or not slot.container_id:
        return False
    content_push(slot=slot, container_id=slot.container_id)
    return True


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
def pool_counts() -> list[dict[str, object]]:
    """Per runtime: idle, assigned, failed, busy (being built) and total slots."""
    rows = Runtime.objects.annotate(
        idle=Count("slots", filter=Q(slots__status=S.IDLE)),
        assigned=Count("slots", filter=Q(slots__status__in=(S.ASSIGNED, S.RECOVERING))),
        failed=Count("slots", filter=Q(slots__status=S.FAILED)),
        busy=Count("slots", filter=Q(slots__status__in=(S.PROVISIONING, S.RECYCLING))),
        total=Count("slots"),
    ).order_by("port_min")
    return [
        {"runtime": r.name, "idle": r.idle, "assigned": r.assigned, "failed": r.failed,
         "busy": r.busy, "total": r.total, "pool_size": r.pool_size, "enabled": r.enabled,
         "ports": f"{r.port_min}-{r.port_max}"}
        for r in rows
    ]


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


def _call_task(func: str, *args: object) -> None:
    from django.utils.module_loading import import_string

    try:
        import_string(func)(*args)
    except EngineError:
        log.exception("task %s%s failed", func, args)


def _dispatch(jobs: list[tuple[int, int]], *, wait: bool,
              progress: Callable[[str], None] | None) -> None:
    """Rebuild slots now (``wait``, bounded parallel, for commands) or in tasks."""
    if not wait:
        for slot_id, generation in jobs:
            _enqueue("pools.tasks.slot_rebuild", slot_id, generation)
        return
    started = time.monotonic()

    def work(job: tuple[int, int]) -> tuple[int, bool, str]:
        close_old_connections()
        try:
            return job[0], slot_rebuild(slot_id=job[0], generation=job[1]), ""
        except EngineError as exc:
            return job[0], False, str(exc)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=max(1, settings.PAAS_CREATE_PARALLEL)) as pool:
        for done, (slot_id, ok, error) in enumerate(pool.map(work, jobs), start=1):
            if progress:
                state = "ready" if ok else f"not ready {error}".strip()
                progress(f"[{done}/{len(jobs)}] slot {slot_id} {state} "
                         f"({time.monotonic() - started:.1f}s)")

"""Deployment services: a user's use of a pool slot, from launch to release.

A launch is a database claim (no Docker call). Content goes to the slot's store in
``pools.content`` and is then pushed into the container; the store stays the source of
truth, so an upload during a recovery reaches the container with the recovery. Every
action other than reading needs an active deployment (``Released`` otherwise), and the
release of a slot by an operator goes through here too, so the deployment always ends
before its slot is recycled.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import timedelta
from typing import IO, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.errors import ApprovalPending
from accounts.selectors import user_admitted, user_quota
from deployments.errors import NotReady, QuotaExceeded, Released, ShareExceeded
from deployments.models import Deployment, EndedReason
from pools import content, hostnames
from pools.errors import InvalidInput, PoolExhausted
from pools.logs import log_follow
from pools.metrics import claim_observed
from pools.models import PoolContainer, Runtime, SlotStatus
from pools.policy import ceiling, max_size, share_limit
from pools.selectors import slots_coming_count
from pools.services import (
    HELD,
    pool_converge_request,
    runtime_cached,
    runtime_checked,
    runtime_get,
    slot_claim,
    slot_content_changed,
    slot_content_sync,
    slot_logs,
    slot_release,
    slot_restart,
)

log = logging.getLogger(__name__)
ACTIVE = Deployment.Status.ACTIVE
PENDING = Deployment.Status.PENDING


# --- launch ---------------------------------------------------------------------------
@claim_observed
def deployment_create(*, user: AbstractBaseUser, runtime_name: str) -> Deployment:
    """Claim an idle slot of the runtime for ``user``: one transaction, no Docker call.

    When no slot is idle but one is being built, or others already wait, the launch
    waits in line: a ``pending`` deployment, served first come, first served as slots
    turn idle (``deployments_serve_waiting``). Raises ``UnknownRuntime``/``InvalidInput``
    (400), ``ApprovalPending`` (403), ``QuotaExceeded``/``ShareExceeded`` (429) and
    ``PoolExhausted`` (503, with Retry-After) when no slot is coming either."""
    if not user_admitted(user=user):
        raise ApprovalPending()
    runtime = runtime_cached(name=runtime_name)
    limit = user_quota(user=user)
    with _claim_serializer(), transaction.atomic():
        # Serialize one user's launches so two at once cannot both pass the quota check
        # (on SQLite the IMMEDIATE transaction already does, and has no row locks).
        if connection.features.has_select_for_update:
            list(get_user_model().objects.select_for_update().filter(pk=user.pk).values("pk"))
        counts = _launch_counts(user_id=user.pk, runtime=runtime)
        runtime = runtime_checked(runtime=runtime, revision=counts.revision)
        if not runtime.enabled:
            raise InvalidInput(f"runtime '{runtime.name}' is disabled",
                               fields={"runtime": [f"runtime '{runtime.name}' is disabled"]})
        if counts.held >= limit and _end_orphaned(user_id=user.pk):
            counts = _launch_counts(user_id=user.pk, runtime=runtime)
        if counts.held >= limit:
            raise QuotaExceeded(
                f"you already have {limit} active deployment(s), your quota; "
                "release one first"
            )
        _check_share(held=counts.held_here, runtime=runtime)
        deployment = _claim_or_queue(user=user, runtime=runtime, waiting=counts.waiting)
    if settings.PAAS_ELASTIC:
        pool_converge_request(runtime_name=runtime.name)  # refill now, not next pass
    if deployment.is_pending:
        deployments_serve_waiting(runtime_name=runtime.name)
        deployment.refresh_from_db()
    return deployment


def serve_waiting_for(runtime_name: str) -> int:
    """The pools' idle listener: a slot of the runtime turned idle."""
    return deployments_serve_waiting(runtime_name=runtime_name)


def pending_count(runtime_name: str) -> int:
    """Launches of the runtime waiting for a container (the pools' demand source)."""
    return Deployment.objects.filter(status=PENDING, runtime_name=runtime_name).count()


# Three counts in one statement, each by its own index, and the runtime row's revision.
# Plain SQL: the ORM's filtered aggregates cost more to build than everything else a
# launch does in Python.
_LAUNCH_COUNTS_SQL = """
SELECT (SELECT COUNT(*) FROM {table} WHERE user_id = %s AND status IN (%s, %s)),
       (SELECT COUNT(*) FROM {table} WHERE user_id = %s AND status IN (%s, %s)
                                       AND runtime_name = %s),
       (SELECT COUNT(*) FROM {table} WHERE runtime_name = %s AND status = %s),
       (SELECT revision FROM {runtimes} WHERE id = %s)
"""


class _LaunchCounts(NamedTuple):
    held: int
    held_here: int
    waiting: int
    revision: int | None


def _launch_counts(*, user_id: int, runtime: Runtime) -> _LaunchCounts:
    """One query, inside the launch's transaction: the user's active and pending
    launches (``held``, the quota), those of this runtime (``held_here``, the share),
    the runtime's launches waiting in line, anyone's (``waiting``), and the runtime
    row's ``revision`` (None: it is gone), which says whether the cached row is current."""
    sql = _LAUNCH_COUNTS_SQL.format(table=Deployment._meta.db_table,
                                    runtimes=Runtime._meta.db_table)
    name = runtime.name
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, ACTIVE, PENDING, user_id, ACTIVE, PENDING,
                             name, name, PENDING, runtime.pk])
        return _LaunchCounts(*cursor.fetchone())


def _claim_or_queue(*, user: AbstractBaseUser, runtime: Runtime, waiting: int) -> Deployment:
    """A running deployment on an idle slot, or a pending one when a slot is coming
    (nobody jumps the line: with ``waiting`` others in line, this launch waits too)."""
    if not waiting:
        try:
            return Deployment.objects.create(user_id=user.pk, runtime_name=runtime.name,
                                             **_claim(user=user, runtime=runtime))
        except PoolExhausted:
            pass
    if settings.PAAS_CLAIM_WAIT <= 0 or slots_coming(runtime=runtime) <= waiting:
        raise PoolExhausted(f"no idle {runtime.name} container is available right now; "
                            "try again in a moment")
    return Deployment.objects.create(user_id=user.pk, runtime_name=runtime.name,
                                     status=PENDING)


def _claim(*, user: AbstractBaseUser, runtime: Runtime) -> dict[str, object]:
    """Take an idle slot for the user: the deployment fields that say so."""
    slot = slot_claim(runtime=runtime, user=user)
    _end_stale(slot_id=slot.pk)
    return {"slot": slot, "port": slot.port, "slug": slot.slug}


# Plain SQL, as the counts: the ORM's UPDATE cost more to build than to run.
_END_STALE_SQL = """
UPDATE {table} SET status = %s, released_at = %s, ended_reason = %s
 WHERE slot_id = %s AND status = %s
"""


def _end_stale(*, slot_id: int) -> None:
    """The slot was idle, so a deployment still marked active on it is stale (its slot
    was released without us): end it, or it could act on this user's slot."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_END_STALE_SQL.format(table=Deployment._meta.db_table),
                       [Deployment.Status.RELEASED, now, EndedReason.SLOT_LOST, slot_id,
                        ACTIVE])


def slots_coming(*, runtime: Runtime) -> int:
    """Slots of the runtime free for waiting launches without anyone releasing one:
    idle now, being built, or (elastic pools) still to be built below the ceiling."""
    free = slots_coming_count(runtime=runtime)
    if settings.PAAS_ELASTIC:
        free += max(0, ceiling(runtime=runtime) - runtime.slots.count())
    return free


# --- waiting launches -----------------------------------------------------------------
def deployments_serve_waiting(*, runtime_name: str) -> int:
    """Hand idle slots to the runtime's pending launches, oldest first; give up on
    those that waited longer than ``PAAS_CLAIM_WAIT``. Safe to run anywhere at any
    time (a read of a pending deployment, the cull schedule). Returns how many were
    served."""
    _expire_waiting(runtime_name=runtime_name)
    served = 0
    while (outcome := _serve_oldest(runtime_name=runtime_name)) is not None:
        served += outcome
    return served


def deployments_serve_all_waiting() -> int:
    names = Deployment.objects.filter(status=PENDING).values_list("runtime_name", flat=True)
    return sum(deployments_serve_waiting(runtime_name=name) for name in set(names))


class _Overtaken(Exception):
    """Another server handed a slot to the same pending deployment first."""


def _serve_oldest(*, runtime_name: str) -> int | None:
    """Give an idle slot to the oldest pending launch: 1 when served, 0 when another
    server got there first (try the next), None when nothing is waiting or idle."""
    runtime = runtime_get(name=runtime_name)
    try:
        with _claim_serializer(), transaction.atomic():
            oldest = Deployment.objects.filter(status=PENDING, runtime_name=runtime_name) \
                .select_related("user").order_by("created_at", "pk").first()
            if oldest is None:
                return None
            claimed = _claim(user=oldest.user, runtime=runtime)
            if not Deployment.objects.filter(pk=oldest.pk, status=PENDING).update(
                    status=ACTIVE, last_activity_at=timezone.now(), **claimed):
                raise _Overtaken()  # rolls the claim back
    except PoolExhausted:
        return None
    except _Overtaken:
        return 0
    return 1


def _expire_waiting(*, runtime_name: str) -> int:
    too_old = timezone.now() - timedelta(seconds=settings.PAAS_CLAIM_WAIT)
    return Deployment.objects.filter(status=PENDING, runtime_name=runtime_name,
                                     created_at__lt=too_old).update(
        status=Deployment.Status.RELEASED, released_at=timezone.now(),
        ended_reason=EndedReason.NOT_SERVED)


def _check_share(*, held: int, runtime: Runtime) -> None:
    """No one user may hold more than ``max_share`` of a pool (besides the quota):
    ``held`` is how many of its containers the user holds or waits for."""
    limit = share_limit(runtime=runtime)
    if held >= limit:
        raise ShareExceeded(
            f"you already hold {held} {runtime.name} container(s), the most one user may "
            f"hold ({runtime.max_share:.0%} of the pool's {max_size(runtime=runtime)}); "
            "release one first")


# Per thread: a claim's commit may run a build inline (tests) whose end serves waiting
# launches in the same thread, which must not wait for its own turn.
_claim_turn = threading.local()


def _claim_serializer() -> AbstractContextManager[object]:
    """On SQLite one writer at a time holds the database: launches take turns on a
    lock file first, rather than in SQLite's busy handler, whose sleeps (up to 100 ms,
    never woken early) turn a burst of claims into a convoy. A file lock, because the
    launches come from several web processes: the kernel wakes the next at once."""
    return _sqlite_claim_turn() if connection.vendor == "sqlite" else nullcontext()


@contextmanager
def _sqlite_claim_turn() -> Iterator[None]:
    if getattr(_claim_turn, "held", False):
        yield
        return
    # Opened per use: each thread and process gets its own lock (a descriptor shared
    # across a fork, or between threads, would share the lock too).
    with open(settings.DATA_DIR / "claims.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _claim_turn.held = True
        try:
            yield
        finally:
            _claim_turn.held = False  # closing the file releases the lock


def _end_orphaned(*, user_id: int) -> int:
    """End active deployments whose slot is no longer the user's (the slot was released
    behind our back, e.g. deleted), so they count neither for the quota nor as active."""
    return Deployment.objects.filter(user_id=user_id, status=ACTIVE).filter(
        Q(slot__isnull=True) | ~Q(slot__owner_id=user_id) | ~Q(slot__status__in=HELD)
    ).update(status=Deployment.Status.RELEASED, released_at=timezone.now(),
             ended_reason=EndedReason.SLOT_LOST)


# --- content ----------------------------------------------------------------------------
def deployment_upload(*, deployment: Deployment, uploads: Sequence[tuple[str, IO[bytes]]],
                      path: str = "") -> list[str]:
    """Store the files (archives extracted) under ``path`` and push them into the
    container. All or nothing: a rejected upload changes nothing. Returns the stored
    paths."""
    slot = _held_slot(deployment)

    def still_mine() -> None:
        # Checked under the store's lock, just before the files land: a release clears
        # the store under the same lock, so nothing of ours can land after it.
        if not _still_held(deployment, slot):
            raise Released()

    stored = content.content_add(slot_id=slot.pk, uploads=uploads, path=path, guard=still_mine)
    slot_content_changed(slot_id=slot.pk)
    slot_content_sync(slot=slot)
    deployment_touch(deployment=deployment)
    return stored


def deployment_files(*, deployment: Deployment) -> list[dict[str, object]]:
    """``[{"path", "size"}]`` of the deployment's stored files."""
    slot = _held_slot(deployment)
    return content.content_list(slot_id=slot.pk)


def deployment_file_delete(*, deployment: Deployment, path: str) -> None:
    """Remove one stored file (``NotFound``; ``UnsafeUpload`` for a path that leaves the
    root) and push the store into the container."""
    slot = _held_slot(deployment)
    content.content_delete(slot_id=slot.pk, path=path)
    slot_content_changed(slot_id=slot.pk)
    slot_content_sync(slot=slot)


# --- names ------------------------------------------------------------------------------
def deployment_alias_set(*, deployment: Deployment, alias: str) -> None:
    """Give the deployment a name of the user's own (``<alias>.<apps domain>``; "" removes
    it). The route is added in the background; ``alias_live`` says when it is there.
    ``InvalidInput`` (field ``alias``) for a bad, reserved or taken name."""
    slot = _held_slot(deployment)
    if not hostnames.slot_alias_set(slot=slot, alias=alias):
        raise Released()


# --- the running container --------------------------------------------------------------
def deployment_logs(*, deployment: Deployment, tail: int = 100) -> list[str]:
    """The container's last ``tail`` log lines (empty while it is being replaced)."""
    slot = _held_slot(deployment)
    deployment_touch(deployment=deployment)
    if slot.status == SlotStatus.RECOVERING:
        return []
    return slot_logs(slot=slot, tail=tail).splitlines()


def deployment_log_follow(*, deployment: Deployment, since: str = "",
                          tail: int = 100) -> tuple[list[str], str]:
    """Log lines after the cursor ``since`` (or the last ``tail``) and the cursor to ask
    with next time; shared with every other follower of the container. Opening the log
    is use (lifetimes); the follow-up polls are not, or a forgotten open tab would keep
    the deployment from ever being idle."""
    slot = _held_slot(deployment)
    if not since:
        deployment_touch(deployment=deployment)
    if slot.status == SlotStatus.RECOVERING or not slot.container_id:
        return [], since
    return log_follow(container_id=slot.container_id, since=since, tail=tail)


def deployment_restart(*, deployment: Deployment) -> bool:
    """Restart the user's app (python/node) or reload the web server. False while the
    container is being replaced: the replacement starts fresh anyway."""
    slot = _held_slot(deployment)
    deployment_touch(deployment=deployment)
    if slot.status != SlotStatus.ASSIGNED:
        return False
    slot_restart(slot=slot)
    return True


# --- release ------------------------------------------------------------------------------
def deployment_release(*, deployment: Deployment, reason: str = EndedReason.USER) -> bool:
    """End the deployment (its history says why: ``reason``), then have its slot
    recycled (container replaced, files deleted). Idempotent: False when it had already
    ended."""
    with transaction.atomic():
        ended = Deployment.objects.filter(pk=deployment.pk,
                                          status__in=(ACTIVE, PENDING)).update(
            status=Deployment.Status.RELEASED, released_at=timezone.now(),
            ended_reason=reason,
        )
        slot = PoolContainer.objects.filter(pk=deployment.slot_id).first()
        if ended and slot is not None and slot.owner_id == deployment.user_id:
            slot_release(slot=slot)
    deployment.refresh_from_db()
    return bool(ended)


def deployments_release_for_user(*, user: AbstractBaseUser,
                                 reason: str = EndedReason.OPERATOR) -> int:
    """Release everything ``user`` holds (an operator's action, or the user being
    deactivated): their active deployments and any slot still assigned to them.
    Returns how many slots were released."""
    released = sum(
        deployment_release(deployment=deployment, reason=reason)
        for deployment in Deployment.objects.filter(user_id=user.pk,
                                                    status__in=(ACTIVE, PENDING))
    )
    for slot in PoolContainer.objects.filter(owner_id=user.pk, status__in=HELD):
        released += slot_release(slot=slot)
    return released


def slot_release_by_operator(*, slot: PoolContainer) -> bool:
    """An operator releases one slot: its active deployment ends through the same path
    as a user's release; a slot without one is released directly."""
    deployment = Deployment.objects.filter(slot_id=slot.pk, status=ACTIVE).first()
    if deployment is not None and deployment_release(deployment=deployment,
                                                     reason=EndedReason.OPERATOR):
        return True
    return slot_release(slot=slot)


def deployment_touch(*, deployment: Deployment) -> None:
    """A user action (upload, restart, logs) is activity: the idle timeout starts again."""
    Deployment.objects.filter(pk=deployment.pk, status=ACTIVE).update(
        last_activity_at=timezone.now())


# --- helpers -------------------------------------------------------------------------------
def _held_slot(deployment: Deployment) -> PoolContainer:
    """The deployment's slot, fresh from the database, if the deployment is active and
    the slot still the user's; otherwise ``Released`` (and an orphan is ended)."""
    deployment.refresh_from_db(fields=["status", "released_at", "slot"])
    if deployment.is_pending:
        raise NotReady()
    if not deployment.is_active:
        raise Released()
    slot = PoolContainer.objects.select_related("runtime").filter(pk=deployment.slot_id).first()
    if slot is None or not _still_held(deployment, slot):
        _end_orphaned(user_id=deployment.user_id)
        raise Released()
    return slot


def _still_held(deployment: Deployment, slot: PoolContainer) -> bool:
    slot.refresh_from_db(fields=["status", "owner", "container_id", "generation"])
    return slot.owner_id == deployment.user_id and slot.status in HELD


"""Self-healing: the level-triggered reconcile pass, the Docker-events watcher (the
fast path) and the periodic schedule. Labels are the truth: only containers carrying
our ``paas.instance`` label are ever looked at, and orphans are removed only after a
full, successful listing."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone

from pools import health, hostnames, metrics, occupancy, services
from pools.engine import ContainerInfo, get_engine
from pools.errors import EngineError, EngineUnavailable
from pools.lease import Holder, LeaseBusy, lease_held
from pools.models import MonitorPass, PoolContainer, Runtime, SlotStatus
from pools.states import BUSY, SETTLED

log = logging.getLogger(__name__)
S = SlotStatus
STUCK_MARGIN = 30  # seconds past the task timeout before a busy slot counts as stuck
WATCHED_ACTIONS = {"die", "oom", "destroy"}
CONFIRM_DELAY = 0.5  # seconds between a failed check and the second look


# --- the reconcile pass -----------------------------------------------------------
def reconcile_pass(*, trigger: str = "schedule", wait: float = 0.0) -> dict[str, Any]:
    """Compare the rows with the labelled containers and converge, under the pools
    lease: when another pass (or a converge) holds it for longer than ``wait`` seconds,
    this one is skipped (``skipped`` in the summary). Returns a summary; with Docker
    unreachable nothing is changed and ``ok`` is False."""
    try:
        with lease_held(wait=wait) as holder:
            return _pass(trigger, holder)
    except LeaseBusy:
        log.info("reconcile pass (%s) skipped: another pass is running", trigger)
        return {"ok": True, "skipped": True, "error": "", "trigger": trigger}


def _pass(trigger: str, holder: Holder) -> dict[str, Any]:
    record = MonitorPass.objects.create()
    summary: dict[str, Any] = {"trigger": trigger, "recovered": [], "orphans_removed": 0,
                               "retried": [], "repushed": [], "refilled": {}, "trimmed": {},
                               "healthy": 0, "unhealthy": 0, "errors": []}
    ok, error = True, ""
    try:
        containers = get_engine().list_managed(settings.PAAS_INSTANCE)
        _remove_orphans(containers, summary)
        _check_slots(containers, summary)
        holder.renew()
        _repush_stale(summary)
        _converge_all(summary)
    except EngineError as exc:  # unreachable or refusing: change nothing, retry next pass
        ok, error = False, str(exc)
        log.warning("reconcile pass aborted: %s", exc)
    except Exception as exc:  # a bug or a broken database: recorded, never half-finished
        ok, error = False, f"{type(exc).__name__}: {exc}"
        log.exception("reconcile pass failed")
    finally:
        summary["routes"] = hostnames.routes_reconcile()  # from the rows, Docker or not
        record.finished_at, record.ok, record.summary = timezone.now(), ok, summary
        record.error = "; ".join(filter(None, [error, *summary["errors"]]))[:2000]
        record.save()
        metrics.pass_observed(record)
        occupancy.occupancy_record()
    return {"ok": ok, "error": error, **summary}


def _repush_stale(summary: dict[str, Any]) -> None:
    """An assigned slot whose container does not serve the current content (a push
    that failed, after an upload or a recovery) gets it pushed again."""
    stale = PoolContainer.objects.select_related("runtime").filter(
        status=S.ASSIGNED, pushed_version__lt=F("content_version"))
    for slot in stale:
        if services.slot_content_sync_safely(slot=slot):
            summary["repushed"].append(slot.pk)
        else:
            summary["errors"].append(f"slot {slot.pk}: content push failed")


def _converge_all(summary: dict[str, Any]) -> None:
    """Every enabled pool to its size; one pool's error does not stop the others."""
    for runtime in Runtime.objects.filter(enabled=True):
        try:
            result = services.pool_converge(runtime=runtime)
        except Exception as exc:
            summary["errors"].append(f"{runtime.name}: {exc}")
            log.warning("converging %s failed: %s", runtime.name, exc)
            continue
        if result["added"]:
            summary["refilled"][runtime.name] = result["added"]
        if result["removed"]:
            summary["trimmed"][runtime.name] = result["removed"]


def _remove_orphans(containers: list[ContainerInfo], summary: dict[str, Any]) -> None:
    """Our label but no row (or a stale generation of a settled slot): remove."""
    slots = {s.pk: s for s in PoolContainer.objects.all()}
    engine = get_engine()
    for info in containers:
        slot = slots.get(info.slot_id or -1)
        stale = (slot is not None and slot.status not in BUSY
                 and info.generation != slot.generation)
        if slot is None or stale:
            engine.remove(info.id)
            summary["orphans_removed"] += 1


def _check_slots(containers: list[ContainerInfo], summary: dict[str, Any]) -> None:
    by_id = {info.id: info for info in containers}
    slots = list(PoolContainer.objects.select_related("runtime").exclude(status=S.FAILED))
    settled = [s for s in slots if s.status in SETTLED]
    with ThreadPoolExecutor(max_workers=16) as pool:
        problems = list(pool.map(lambda s: diagnose(s, by_id.get(s.container_id)), settled))
    for slot, problem in zip(settled, problems, strict=True):
        _record_health(slot, problem, summary)
        if problem and _confirm(slot, problem) and services.slot_recover(
                slot=slot, reason=problem, trigger="reconcile"):
            summary["recovered"].append(slot.pk)
    for slot in slots:
        if slot.status in BUSY and _stuck(slot) and services.slot_retry(slot=slot):
            summary["retried"].append(slot.pk)


def diagnose(slot: PoolContainer, info: ContainerInfo | None) -> str:
    """Why the slot is unhealthy, or "" when it is fine. A user's own crashing app is
    not a failed slot: assigned python/node slots are judged by the container alone."""
    if not slot.container_id or info is None:
        return "container missing"
    if not info.running:
        cause = "killed by the out-of-memory killer" if info.oom_killed else (
            f"exited with code {info.exit_code}")
        return f"container {info.status}: {cause}"
    needs_http = not slot.runtime.app_runtime or slot.status == S.IDLE
    if needs_http and not health.http_answers(slot.port, timeout=2.0, host=info.node_addr):
        return f"port {slot.port} does not answer HTTP"
    return ""


def _confirm(slot: PoolContainer, problem: str) -> bool:
    """Look again before replacing anything: a daemon that is restarting, or a port that
    was briefly busy, must not cost a user their container."""
    get_engine().ping()  # raises EngineUnavailable: the pass stops, nothing replaced
    time.sleep(CONFIRM_DELAY)
    return bool(diagnose(slot, get_engine().inspect(slot.container_id)
                         if slot.container_id else None))


def _record_health(slot: PoolContainer, problem: str, summary: dict[str, Any]) -> None:
    now = timezone.now()
    changes: dict[str, Any] = {"healthy": not problem, "health_checked_at": now}
    if not problem:
        summary["healthy"] += 1
        if slot.failures and slot.built_at and (
                now - slot.built_at).total_seconds() > services.STABLE_SECONDS:
            changes["failures"] = 0  # up long enough: earlier failures are forgiven
    else:
        summary["unhealthy"] += 1
    PoolContainer.objects.filter(pk=slot.pk, generation=slot.generation).update(**changes)


def stuck_seconds() -> int:
    """How long a busy slot may go untouched before the pass retries it. No task runs
    longer than django-q2's timeout; past it, the task is lost: its worker was killed
    (the ORM broker hands it out again after its retry time, Redis never does) or it
    sat in a killed cluster's hands. A retry under a new generation is safe even when
    the old task does turn up: it finds its generation gone and stops."""
    return int(settings.Q_CLUSTER.get("timeout", 120)) + STUCK_MARGIN


def _stuck(slot: PoolContainer) -> bool:
    now = timezone.now()
    if slot.retry_after:
        return slot.retry_after <= now
    return (now - slot.status_changed_at).total_seconds() > stuck_seconds()


# --- the watcher (fast path) --------------------------------------------------------
class _Stop(BaseException):
    """Raised by the signal handler; not an Exception, so that no ``except Exception``
    on the way (the engine's events stream turns those into "unreachable") swallows it."""


def watch(*, say: Callable[[str], None] = print, max_events: int | None = None) -> None:
    """Follow Docker events for our instance and queue a recovery the moment a current
    container dies. Reconnects (and runs a pass, events being lossy) after the daemon
    comes back; SIGTERM/SIGINT stop it cleanly."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    seen = 0
    delay = 1.0
    say(f"watching Docker events for instance {settings.PAAS_INSTANCE}")
    try:
        while max_events is None or seen < max_events:
            try:
                for event in get_engine().events(settings.PAAS_INSTANCE):
                    delay = 1.0
                    if event.action in WATCHED_ACTIONS:
                        seen += 1
                        handle_event(event.container_id, event.action, event.labels, say,
                                     trigger=event.trigger)
                        if max_events is not None and seen >= max_events:
                            return
            except EngineUnavailable as exc:
                say(f"Docker unreachable ({exc}); reconnecting in {delay:.0f}s")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                _catch_up(say)
    except _Stop:
        say("watcher stopped")


def handle_event(container_id: str, action: str, labels: dict[str, str],
                 say: Callable[[str], None] = print, *, trigger: str = "watch") -> bool:
    """Queue recovery if the event is about the slot's current container; ``trigger``
    records which news it was (see ``EngineEvent.trigger``)."""
    close_old_connections()
    slot_id = labels.get("paas.slot", "")
    slot = PoolContainer.objects.select_related("runtime").filter(
        pk=int(slot_id) if slot_id.isdigit() else -1).first()
    if slot is None or slot.container_id != container_id:
        return False  # an old generation, or a container we are removing ourselves
    if slot.status not in SETTLED:
        return False
    if action == "oom" and _still_running(container_id):
        say(f"slot {slot.pk}: a process inside was killed for lack of memory; "
            "the container still runs, nothing to recover")
        return False
    reason = "killed by the out-of-memory killer" if action == "oom" else f"container {action}"
    queued = services.slot_recover(slot=slot, reason=reason, trigger=trigger)
    if queued:
        say(f"slot {slot.pk} ({slot.runtime.name}:{slot.port}): {reason}; recovery queued")
    return queued


def _still_running(container_id: str) -> bool:
    """An oom event also comes when the kernel kills one child process of a user's app:
    the container then keeps running and is the user's to keep. If it did go down, its
    own die event follows, so asking now loses nothing."""
    info = get_engine().inspect(container_id)
    return info is not None and info.running


def _catch_up(say: Callable[[str], None]) -> None:
    try:
        result = reconcile_pass(trigger="watch-reconnect")
        if result["ok"]:
            say("reconnected; reconcile pass done")
    except Exception as exc:  # the next reconnect tries again
        log.warning("catch-up pass failed: %s", exc)


# --- schedules ----------------------------------------------------------------------
SCHEDULE_NAME = "paas-reconcile"
PRUNE_SCHEDULE_NAME = "paas-prune"


def schedules_install() -> list[str]:
    """Install (or update) the periodic reconcile and prune tasks; safe to run any
    number of times. django-q2 schedules have a one-minute floor, so the interval is
    rounded to minutes."""
    from django_q.models import Schedule

    minutes = max(1, round(settings.PAAS_MONITOR_INTERVAL / 60))
    schedules = [(SCHEDULE_NAME, "pools.tasks.reconcile", minutes, f"every {minutes} min"),
                 (PRUNE_SCHEDULE_NAME, "pools.tasks.prune", 24 * 60, "daily")]
    lines = []
    for name, func, every, said in schedules:
        _, created = Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES,
                                 "minutes": every, "repeats": -1},
        )
        lines.append(f"{name}: {said} ({'installed' if created else 'updated'})")
    return lines

"""Lifetimes: forgotten deployments come back to the pool on their own.

Off by default. Per runtime (``max_age``, ``idle_timeout``, ``lifetime_extension``),
overridable per user by staff (``accounts.Quota``: blank = the runtime's, 0 = none). A
deployment expires ``max_age`` after launch, or ``idle_timeout`` after its last use.
Use is a user action (upload, restart, logs: ``deployment_touch``) or requests reaching
the container: its received-bytes counter grew by more than the platform's own health
probes and the network's background chatter account for. (Requests through the proxy's
access log join when the HTTPS front door lands.) The cull releases expired deployments
like a user's release, and the history says why (``ended_reason``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.models import Quota
from accounts.selectors import user_quota_row
from deployments.errors import ExtendRefused
from deployments.models import Deployment, EndedReason
from pools.errors import EngineError
from pools.models import MonitorPass, PoolContainer, Recovery, Runtime
from pools.services import slot_rx_bytes

log = logging.getLogger(__name__)
ACTIVE = Deployment.Status.ACTIVE
# Measured on this engine (a bridge network, inter-container traffic off): one health
# probe adds ~500 received bytes, a curl GET ~480, a browser GET ~600; an idle container
# receives ~70-210 bytes per 30 s of background chatter (IPv6 solicitations and the like).
PROBE_RX_BYTES = 640
PROBES_PER_PASS = 2  # the check and, after a failure, the second look
NOISE_RX_BYTES = 200
NOISE_RX_BYTES_PER_MINUTE = 200


@dataclass(frozen=True)
class Lifetime:
    max_age: int | None  # seconds; None: no limit
    idle_timeout: int | None
    extension: int | None

    @property
    def on(self) -> bool:
        return bool(self.max_age or self.idle_timeout)


def lifetime_of(*, deployment: Deployment, runtime: Runtime | None,
                quota: Quota | None) -> Lifetime:
    """The runtime's lifetimes with the user's overrides applied."""
    def pick(own: int | None, default: int | None) -> int | None:
        return (default or None) if own is None else (own or None)

    return Lifetime(
        max_age=pick(getattr(quota, "max_age", None), getattr(runtime, "max_age", None)),
        idle_timeout=pick(getattr(quota, "idle_timeout", None),
                          getattr(runtime, "idle_timeout", None)),
        extension=getattr(runtime, "lifetime_extension", None) or None,
    )


class LifetimePolicies:
    """The lifetimes of many deployments (a list, one answer) with each runtime's policy
    and each user's quota read once. Rows already in hand are used as they are: the
    runtime a launch just claimed a slot of, the quota joined to the request's user."""

    def __init__(self, *, user: AbstractBaseUser | None = None) -> None:
        self._runtimes: dict[str, Runtime | None] = {}
        self._quotas: dict[int, Quota | None] = {}
        if user is not None and user.is_authenticated:
            self._quotas[user.pk] = user_quota_row(user=user)

    def of(self, deployment: Deployment) -> Lifetime:
        return lifetime_of(deployment=deployment, runtime=self._runtime(deployment),
                           quota=self._quota(deployment.user_id))

    def _runtime(self, deployment: Deployment) -> Runtime | None:
        name = deployment.runtime_name
        if name not in self._runtimes:
            slot = deployment.slot if Deployment.slot.is_cached(deployment) else None
            if slot is not None and PoolContainer.runtime.is_cached(slot):
                self._runtimes[name] = slot.runtime
            else:
                self._runtimes[name] = Runtime.objects.filter(name=name).first()
        return self._runtimes[name]

    def _quota(self, user_id: int) -> Quota | None:
        if user_id not in self._quotas:
            self._quotas[user_id] = Quota.objects.filter(user_id=user_id).first()
        return self._quotas[user_id]


def deployment_lifetime(*, deployment: Deployment) -> Lifetime:
    return LifetimePolicies().of(deployment)


def expiry(*, deployment: Deployment, lifetime: Lifetime) -> tuple[datetime | None, str]:
    """When the deployment expires under ``lifetime``, and why (None: never)."""
    ends: list[tuple[datetime, str]] = []
    if lifetime.max_age:
        extra = (lifetime.extension or 0) if deployment.extended_at else 0
        ends.append((deployment.created_at + timedelta(seconds=lifetime.max_age + extra),
                     EndedReason.MAX_AGE))
    if lifetime.idle_timeout:
        ends.append((deployment.last_activity_at + timedelta(seconds=lifetime.idle_timeout),
                     EndedReason.IDLE_TIMEOUT))
    return min(ends) if ends else (None, "")


def deployment_expires_at(*, deployment: Deployment,
                          policies: LifetimePolicies | None = None) -> datetime | None:
    if not deployment.is_active:
        return None
    return expiry(deployment=deployment,
                  lifetime=(policies or LifetimePolicies()).of(deployment))[0]


def deployment_expiry_warning(*, deployment: Deployment) -> dict[str, object] | None:
    """For the page: ``{"expires_at", "can_extend"}`` once expiry is within
    ``PAAS_EXPIRY_WARNING`` seconds, else None."""
    if not deployment.is_active:
        return None
    lifetime = deployment_lifetime(deployment=deployment)
    expires_at, _ = expiry(deployment=deployment, lifetime=lifetime)
    warn_from = timezone.now() + timedelta(seconds=settings.PAAS_EXPIRY_WARNING)
    if expires_at is None or expires_at > warn_from:
        return None
    return {"expires_at": expires_at,
            "can_extend": bool(lifetime.extension) and deployment.extended_at is None}


def deployment_extend(*, deployment: Deployment) -> Deployment:
    """Push the expiry back once: ``lifetime_extension`` more seconds of age, and the
    idle clock starts again. ``ExtendRefused`` when the policy has no extension or it
    was used (one conditional UPDATE: two clicks extend once)."""
    lifetime = deployment_lifetime(deployment=deployment)
    if not lifetime.on or not lifetime.extension:
        raise ExtendRefused("this deployment's lifetime cannot be extended")
    extended = Deployment.objects.filter(pk=deployment.pk, status=ACTIVE,
                                         extended_at__isnull=True).update(
        extended_at=timezone.now(), last_activity_at=timezone.now())
    if not extended:
        raise ExtendRefused("this deployment was extended already; it can be extended once")
    deployment.refresh_from_db()
    return deployment


# --- the cull ---------------------------------------------------------------------------
def deployments_cull() -> dict[str, int]:
    """Release every active deployment past its lifetime (a django-q2 schedule runs
    this every minute). Returns how many were released, and why."""
    from deployments.services import deployment_release

    runtimes = {r.name: r for r in Runtime.objects.all()}
    quotas = {q.user_id: q for q in Quota.objects.exclude(max_age=None, idle_timeout=None)}
    released = {str(EndedReason.MAX_AGE): 0, str(EndedReason.IDLE_TIMEOUT): 0}
    for deployment in Deployment.objects.filter(status=ACTIVE).select_related("slot"):
        lifetime = lifetime_of(deployment=deployment,
                               runtime=runtimes.get(deployment.runtime_name),
                               quota=quotas.get(deployment.user_id))
        if not lifetime.on:
            continue
        if lifetime.idle_timeout:
            _sample_activity(deployment, runtimes.get(deployment.runtime_name))
        expires_at, reason = expiry(deployment=deployment, lifetime=lifetime)
        if expires_at is not None and expires_at <= timezone.now() and deployment_release(
                deployment=deployment, reason=reason):
            log.info("released %s: %s", deployment, reason)
            released[reason] += 1
    return released


def _sample_activity(deployment: Deployment, runtime: Runtime | None) -> None:
    """Read the container's received-bytes counter; growth beyond what our probes and
    background chatter explain since the last look is use."""
    slot = deployment.slot
    if slot is None:
        return
    try:
        rx = slot_rx_bytes(slot=slot)
    except EngineError as exc:  # no verdict this time; the next pass looks again
        log.warning("could not read the network counter of %s: %s", deployment, exc)
        return
    if rx is None:
        return
    now = timezone.now()
    previous, since = deployment.net_rx_bytes, deployment.net_checked_at
    changes: dict[str, object] = {"net_rx_bytes": rx, "net_checked_at": now}
    if previous is not None and since is not None and not _replaced_since(slot.pk, since) \
            and rx - previous > _allowance(since, now, runtime):
        changes["last_activity_at"] = now
        deployment.last_activity_at = now
    Deployment.objects.filter(pk=deployment.pk).update(**changes)


def _replaced_since(slot_id: int, since: datetime) -> bool:
    """A recovery replaced the container (its counter started again, and the readiness
    probes of the replacement are ours): no verdict, only a new baseline."""
    return Recovery.objects.filter(slot_id=slot_id, started_at__gte=since).exists()


def _allowance(since: datetime, now: datetime, runtime: Runtime | None) -> float:
    """Received bytes the platform itself explains between two looks: the reconcile
    passes' HTTP probes (only web-server runtimes are probed once assigned) and the
    network's background chatter."""
    passes = MonitorPass.objects.filter(started_at__gte=since - timedelta(seconds=5)).count()
    probes = 0 if runtime is not None and runtime.app_runtime else passes * PROBES_PER_PASS
    minutes = (now - since).total_seconds() / 60
    return probes * PROBE_RX_BYTES + NOISE_RX_BYTES + NOISE_RX_BYTES_PER_MINUTE * minutes


def cull_schedule_install() -> str:
    """The every-minute cull (django-q2 schedules have a one-minute floor); idempotent."""
    from django_q.models import Schedule

    _, created = Schedule.objects.update_or_create(
        name="paas-cull", defaults={"func": "deployments.tasks.cull",
                                    "schedule_type": Schedule.MINUTES, "minutes": 1,
                                    "repeats": -1})
    return f"cull every minute ({'installed' if created else 'updated'})"


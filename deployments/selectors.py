"""Reads about deployments (and the pools overview the API shows staff)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError
from django.db.models import Count, QuerySet
from django.utils import timezone

from accounts.models import Quota
from deployments.lifetimes import expiry, lifetime_of
from deployments.models import Deployment
from pools.errors import NotFound
from pools.models import PoolContainer, Recovery, Runtime
from pools.runtimes import DEFAULTS
from pools.services import pool_counts


def deployments_for_user(*, user: AbstractBaseUser) -> QuerySet[Deployment]:
    """The user's deployments, newest first, released ones included (history)."""
    return Deployment.objects.filter(user_id=user.pk).select_related("slot")


def deployment_get_for_user(*, user: AbstractBaseUser, deployment_id: int) -> Deployment:
    """One of the user's deployments; someone else's is ``NotFound`` like a missing one."""
    deployment = deployments_for_user(user=user).filter(pk=deployment_id).first()
    if deployment is None:
        raise NotFound(f"no deployment {deployment_id}")
    return deployment


def deployment_last_recovery(*, deployment: Deployment) -> Recovery | None:
    """The latest replacement of the deployment's container while it was the user's."""
    if deployment.slot_id is None:
        return None
    recoveries = Recovery.objects.filter(
        slot_id=deployment.slot_id, owner_id=deployment.user_id,
        started_at__gte=deployment.created_at,
    )
    if deployment.released_at is not None:
        recoveries = recoveries.filter(started_at__lte=deployment.released_at)
    return recoveries.order_by("-started_at").first()


def deployment_url(*, deployment: Deployment, request_host: str) -> str:
    """``http://<host>:<port>/``: the host is the node running the slot on a swarm, else
    ``PAAS_PUBLIC_HOST`` or the request's host without its port; the HTTPS address when
    port URLs are turned off (``PAAS_DIRECT_PORTS``); "" while the deployment waits for
    its container."""
    if deployment.port is None:
        return ""
    if not settings.PAAS_DIRECT_PORTS and deployment.addresses["https_url"]:
        return str(deployment.addresses["https_url"])
    slot = deployment.slot if deployment.is_active else None
    host = (slot.node_addr if slot else "") or settings.PAAS_PUBLIC_HOST or _strip_port(
        request_host)
    if settings.SECURE_HSTS_SECONDS and host == settings.PAAS_DOMAIN:
        # Browsers apply the platform's HSTS to every port of its host: a port URL there
        # would be forced to https and break. The apps domain is not covered.
        host = settings.PAAS_APPS_DOMAIN
    return f"http://{host}:{deployment.port}/"


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:5000
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def runtime_names_enabled() -> list[str]:
    """Names of the runtimes a user may launch now (the API schema lists them). Before
    the database has its tables (``check --deploy`` builds the schema): the defaults."""
    try:
        return list(Runtime.objects.filter(enabled=True).order_by("name")
                    .values_list("name", flat=True))
    except DatabaseError:
        return sorted(runtime.name for runtime in DEFAULTS)


def runtimes_available() -> list[dict[str, Any]]:
    """The enabled runtimes with how many of their slots are idle, assigned, in all."""
    return [
        {"name": c["runtime"], "idle": c["idle"], "assigned": c["assigned"], "total": c["total"]}
        for c in pool_counts() if c["enabled"]
    ]


def pools_overview() -> list[dict[str, Any]]:
    """Per runtime its counts and its slots, for staff."""
    slots: dict[str, list[dict[str, Any]]] = {}
    rows = PoolContainer.objects.select_related("runtime", "owner").order_by("port")
    for slot in rows:
        slots.setdefault(slot.runtime.name, []).append({
            "id": slot.pk, "port": slot.port, "status": slot.status,
            "owner": slot.owner.get_username() if slot.owner else None,
            "generation": slot.generation,
            "health": _health(slot.healthy),
            "health_checked_at": slot.health_checked_at,
        })
    return [{**counts, "slots": slots.get(str(counts["runtime"]), [])}
            for counts in pool_counts()]


def _health(healthy: bool | None) -> str:
    if healthy is None:
        return "unknown"
    return "healthy" if healthy else "unhealthy"


# --- the operators' demand view ---------------------------------------------------------
DEMAND_MINUTES = 10  # claims per minute are averaged over this window


def pools_demand(*, minutes: int = DEMAND_MINUTES) -> list[dict[str, Any]]:
    """Per runtime what an operator watches in a wave: demand (launches accepted per
    minute over the last ``minutes``, pending ones included), launches waiting, idle
    (claimable), being built, the scaling policy, and each assigned deployment with
    when it expires (``expires_at`` None: never), soonest first."""
    since = timezone.now() - timedelta(minutes=minutes)
    launched = dict(Deployment.objects.filter(created_at__gte=since)
                    .values_list("runtime_name").annotate(n=Count("pk")))
    waiting = dict(Deployment.objects.filter(status=Deployment.Status.PENDING)
                   .values_list("runtime_name").annotate(n=Count("pk")))
    runtimes = {runtime.name: runtime for runtime in Runtime.objects.all()}
    held = _assigned_with_expiry(runtimes=runtimes)
    rows = []
    for counts in pool_counts():
        runtime = runtimes[counts["runtime"]]
        rows.append({
            **counts, "window_minutes": minutes, "waiting": waiting.get(runtime.name, 0),
            "claims_per_minute": round(launched.get(runtime.name, 0) / minutes, 2),
            "policy": {"min_idle": runtime.min_idle, "max_total": runtime.max_total,
                       "idle_ttl": runtime.idle_ttl, "step": runtime.step},
            "deployments": held.get(runtime.name, []),
        })
    return rows


def _assigned_with_expiry(*, runtimes: dict[str, Runtime]) -> dict[str, list[dict[str, Any]]]:
    quotas = {quota.user_id: quota for quota in Quota.objects.all()}
    found: dict[str, list[dict[str, Any]]] = {}
    for deployment in Deployment.objects.filter(status=Deployment.Status.ACTIVE) \
            .select_related("user").order_by("created_at"):
        lifetime = lifetime_of(deployment=deployment,
                               runtime=runtimes.get(deployment.runtime_name),
                               quota=quotas.get(deployment.user_id))
        expires_at, reason = expiry(deployment=deployment, lifetime=lifetime)
        found.setdefault(deployment.runtime_name, []).append({
            "deployment": deployment.pk, "user": deployment.user.get_username(),
            "port": deployment.port, "expires_at": expires_at, "reason": reason})
    never = timezone.now() + timedelta(days=36500)
    for rows in found.values():
        rows.sort(key=lambda row: row["expires_at"] or never)
    return found

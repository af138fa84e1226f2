"""Reads about deployments (and the pools overview the API shows staff)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError
from django.db.models import QuerySet

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

"""A user's use of a pool slot. The row outlives the slot's assignment (history), so it
keeps its own copy of the runtime name and port."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pools import hostnames, proxy
from pools.models import PoolContainer, SlotStatus


class EndedReason(models.TextChoices):
    """Why a deployment ended: the user or an operator released it, the account was
    deactivated or deleted, it reached its maximum age or its idle timeout (lifetimes),
    or its slot was taken back behind its back; or a waiting launch got no container
    within ``PAAS_CLAIM_WAIT``."""

    USER = "user"
    OPERATOR = "operator"
    ACCOUNT = "account"
    MAX_AGE = "max_age"
    IDLE_TIMEOUT = "idle_timeout"
    SLOT_LOST = "slot_lost"
    NOT_SERVED = "not_served"  # a waiting launch got no container in time


class Deployment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for a container (first come, first served)
        ACTIVE = "active"
        RELEASED = "released"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deployments",
    )
    slot = models.ForeignKey(
        PoolContainer, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="deployments",
    )
    runtime_name = models.CharField(max_length=32)
    port = models.PositiveIntegerField(null=True, blank=True)  # none while pending
    # The slot's slug at claim time: the deployment's hostname for its whole life.
    slug = models.CharField(max_length=63, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True,
    )
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(
        max_length=16, choices=EndedReason.choices, blank=True,
        help_text="Why the deployment ended (blank while it runs).",
    )
    # Lifetimes (deployments.lifetimes): the last sign of use, the one extension, and
    # the container's received-bytes counter at the last look.
    last_activity_at = models.DateTimeField(default=timezone.now)
    extended_at = models.DateTimeField(null=True, blank=True)
    net_rx_bytes = models.BigIntegerField(null=True, blank=True)
    net_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["slot"], condition=Q(status="active"),
                name="one_active_deployment_per_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.runtime_name}:{self.port} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_ended(self) -> bool:
        return self.status == self.Status.RELEASED

    @property
    def state(self) -> str:
        """What the user sees: ``pending`` (being prepared), ``running``, ``recovering``,
        ``failed`` or ``released``."""
        if self.is_pending:
            return "pending"
        slot = self.slot
        if not self.is_active or slot is None or slot.owner_id != self.user_id:
            return "released"
        return {
            SlotStatus.ASSIGNED: "running",
            SlotStatus.RECOVERING: "recovering",
            SlotStatus.FAILED: "failed",
        }.get(SlotStatus(slot.status), "released")

    @cached_property
    def addresses(self) -> dict[str, Any]:
        """The deployment's HTTPS addresses and whether Caddy serves them yet ("live";
        else the page says the address is pending). None/"" without a Caddy."""
        slot = self.slot
        held = self.state != "released" and slot is not None
        if not proxy.enabled() or not self.slug:
            return {"hostname": None, "https_url": None, "https_live": False, "alias": "",
                    "alias_url": None, "alias_live": False, "suspended": False}
        hostname = hostnames.app_hostname(self.slug)
        alias = slot.alias if held and slot is not None else ""
        return {
            "hostname": hostname, "https_url": hostnames.https_url(hostname),
            "https_live": held and slot is not None and hostnames.routed(slot, self.slug),
            "alias": alias,
            "alias_url": hostnames.https_url(hostnames.app_hostname(alias)) if alias else None,
            "alias_live": held and slot is not None and hostnames.routed(slot, alias),
            "suspended": held and slot is not None and slot.suspended,
        }

"""Per-user settings the platform keeps beside Django's own user."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Quota(models.Model):
    """A staff-editable limit on one user's active deployments."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota",
    )
    max_deployments = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Active deployments this user may hold; blank means the platform "
                  "default (PAAS_USER_QUOTA).",
    )

    max_age = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Seconds a deployment of this user may live; blank: the runtime's "
                  "policy; 0: no limit.",
    )
    idle_timeout = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Seconds without use before this user's deployment is released; blank: "
                  "the runtime's policy; 0: no limit.",
    )

    def __str__(self) -> str:
        limit = "default" if self.max_deployments is None else self.max_deployments
        return f"quota of {self.user}: {limit}"


class SignupMode(models.TextChoices):
    OPEN = "open", "open: anyone may sign up and launch"
    INVITE = "invite", "invite: a valid invite code is needed to sign up"
    APPROVAL = "approval", "approval: staff approve each new account before it can launch"


class SignupPolicy(models.Model):
    """The one row of sign-up settings. Created on first use from ``PAAS_SIGNUP_MODE``;
    from then on operators change it in the admin."""

    mode = models.CharField(max_length=16, choices=SignupMode.choices,
                            default=SignupMode.OPEN)

    class Meta:
        verbose_name = verbose_name_plural = "sign-up policy"

    def __str__(self) -> str:
        return f"sign-up: {self.mode}"


def _new_invite_code() -> str:
    return secrets.token_urlsafe(9)


class InviteCode(models.Model):
    """A class code: up to ``max_uses`` people may sign up with it until it expires. Its
    holders are exempt from the per-address sign-up and login throttles (a whole class
    often sits behind one NAT address)."""

    code = models.CharField(max_length=64, unique=True, default=_new_invite_code,
                            help_text="What people type at sign-up (case-insensitive).")
    note = models.CharField(max_length=200, blank=True, help_text="e.g. the class it is for.")
    max_uses = models.PositiveIntegerField(default=60)
    uses = models.PositiveIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Blank: never expires.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.code} ({self.note})" if self.note else self.code

    def is_current(self, now: datetime | None = None) -> bool:
        """Active and not expired: its holders keep the throttle exemption."""
        now = now or timezone.now()
        return self.active and (self.expires_at is None or self.expires_at > now)


class Admission(models.Model):
    """How a self-registered user got in: with which invite code, and whether (when)
    staff approved them. A user without this row was made by an operator (admin,
    ``createsuperuser``) and is admitted."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="admission")
    invite = models.ForeignKey(InviteCode, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="holders")
    approved_at = models.DateTimeField(
        null=True, blank=True, help_text="Blank: waiting for approval; cannot launch.")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"admission of {self.user}"

"""Reads about accounts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Admission, InviteCode, Quota, SignupMode, SignupPolicy

# The one-to-one rows of a user that a launch reads (``Quota.user``, ``Admission.user``):
# the API's authentication joins them to the user and marks the user so.
LAUNCH_RELATIONS = ("quota", "admission")
LAUNCH_ROWS_JOINED = "launch_rows_joined"


def _joined(user: AbstractBaseUser, relation: str) -> tuple[bool, Any]:
    """``(True, row or None)`` when ``user`` was read for this request with its
    one-to-one ``relation`` joined (the API's authentication does), else ``(False,
    None)``: the caller reads the row itself, fresh."""
    if not getattr(user, LAUNCH_ROWS_JOINED, False):
        return False, None
    return True, getattr(user, relation, None)  # None: joined, and there is no row


def user_quota_row(*, user: AbstractBaseUser) -> Quota | None:
    """Staff's quota row of ``user`` (limits and lifetimes), None when there is none."""
    joined, row = _joined(user, "quota")
    return row if joined else Quota.objects.filter(user_id=user.pk).first()


def user_quota(*, user: AbstractBaseUser) -> int:
    """How many active deployments ``user`` may hold: their own quota when staff set
    one, else ``PAAS_USER_QUOTA``."""
    row = user_quota_row(user=user)
    limit = None if row is None else row.max_deployments
    return settings.PAAS_USER_QUOTA if limit is None else limit


def signup_policy() -> SignupPolicy:
    """The sign-up settings row, created from ``PAAS_SIGNUP_MODE`` on first use."""
    policy, _ = SignupPolicy.objects.get_or_create(
        pk=1, defaults={"mode": settings.PAAS_SIGNUP_MODE})
    return policy


def signup_mode() -> str:
    return signup_policy().mode


def user_admitted(*, user: AbstractBaseUser) -> bool:
    """May ``user`` launch? Staff and operator-made users (no admission row) may; a
    self-registered one once admitted (open sign-up, an invite code, or approval)."""
    if getattr(user, "is_staff", False):
        return True
    joined, row = _joined(user, "admission")
    if joined:
        return row is None or row.approved_at is not None
    admission = Admission.objects.filter(user_id=user.pk).values_list(
        "approved_at", flat=True)
    return not admission.exists() or admission.first() is not None


def invite_lookup(*, code: str) -> InviteCode | None:
    """The current (active, unexpired) invite with this code, used up or not."""
    invite = InviteCode.objects.filter(code__iexact=code.strip()).first() if code else None
    return invite if invite is not None and invite.is_current() else None


def invite_holder(*, username: str) -> bool:
    """Did ``username`` sign up with an invite code that is still current?"""
    if not username:
        return False
    user = get_user_model().objects.filter(username=username).first()
    admission = Admission.objects.filter(user_id=getattr(user, "pk", None)).select_related(
        "invite").first()
    return bool(admission and admission.invite and admission.invite.is_current())


__all__ = ["SignupMode", "invite_holder", "invite_lookup", "signup_mode", "signup_policy",
           "user_admitted", "user_quota", "user_quota_row"]

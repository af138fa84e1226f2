"""Reads about accounts."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Admission, InviteCode, Quota, SignupMode, SignupPolicy


def user_quota(*, user: AbstractBaseUser) -> int:
    """How many active deployments ``user`` may hold: their own quota when staff set
    one, else ``PAAS_USER_QUOTA``."""
    limit = (
        Quota.objects.filter(user_id=user.pk)
        .values_list("max_deployments", flat=True)
        .first()
    )
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
           "user_admitted", "user_quota"]

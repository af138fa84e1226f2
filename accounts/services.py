"""Writes about accounts: sign-up (with the sign-up policy and invite codes) and
approval."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AbstractUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.errors import InviteInvalid, InviteRequired, UsernameTaken
from accounts.models import Admission, InviteCode, SignupMode
from accounts.selectors import signup_mode


def user_register(*, username: str, email: str, password: str,
                  invite_code: str = "") -> AbstractUser:
    """A new, active, non-staff user (the caller has validated the input), admitted by
    the sign-up policy: at once in open mode or with a valid invite code; in approval
    mode without a code, once staff approve. In invite mode a code is required. A bad
    code (``InviteInvalid``) or a missing one (``InviteRequired``) creates nothing. A
    name taken in any case raises ``UsernameTaken`` (409), also when a racing
    registration takes it between the check and the insert: the database holds a unique
    index on the lower-cased name."""
    users = get_user_model().objects
    if users.filter(username__iexact=username).exists():
        raise UsernameTaken()
    mode = signup_mode()
    try:
        with transaction.atomic():
            invite = invite_redeem(code=invite_code) if invite_code else None
            if mode == SignupMode.INVITE and invite is None:
                raise InviteRequired(
                    "sign-up needs an invite code; ask your teacher or operator",
                    fields={"invite_code": ["An invite code is required."]})
            user: AbstractUser = users.create_user(
                username=username, email=email, password=password,
            )
            admitted = mode == SignupMode.OPEN or invite is not None
            Admission.objects.create(user=user, invite=invite,
                                     approved_at=timezone.now() if admitted else None)
    except IntegrityError:
        raise UsernameTaken() from None
    return user


def invite_redeem(*, code: str) -> InviteCode:
    """Use one place of the invite code: one conditional UPDATE, so two sign-ups racing
    for its last place cannot both win. ``InviteInvalid`` when unknown, inactive,
    expired or used up."""
    now = timezone.now()
    usable = InviteCode.objects.filter(code__iexact=code.strip(), active=True,
                                       uses__lt=F("max_uses")).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    invite = usable.first()
    if invite is None or not usable.filter(pk=invite.pk).update(uses=F("uses") + 1):
        raise InviteInvalid("this invite code is unknown, expired or used up",
                            fields={"invite_code": ["Unknown, expired or used-up code."]})
    return invite


def user_approve(*, user: AbstractBaseUser, by: AbstractBaseUser | None = None) -> bool:
    """Staff let a waiting user launch. False if they were admitted already."""
    admission, _ = Admission.objects.get_or_create(user_id=user.pk)
    if admission.approved_at is not None:
        return False
    return bool(Admission.objects.filter(pk=admission.pk, approved_at__isnull=True).update(
        approved_at=timezone.now(), approved_by_id=by.pk if by else None))

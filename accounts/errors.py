"""Account errors, in the project's one hierarchy (``pools.errors.PaasError``)."""

from pools.errors import InvalidInput, PaasError

USERNAME_TAKEN = "This username is already taken."


class LockedOut(PaasError):
    """Too many failed login attempts; try again later."""

    code = "locked_out"
    status = 429


class InviteRequired(InvalidInput):
    """Sign-up needs an invite code."""

    code = "invite_required"


class InviteInvalid(InvalidInput):
    """This invite code is unknown, expired or used up."""

    code = "invite_invalid"


class ApprovalPending(PaasError):
    """Your account is waiting for staff approval; you can launch once it is approved."""

    code = "approval_pending"
    status = 403


class UsernameTaken(PaasError):
    """This username is already taken (in any case): a conflict with an existing
    account, not a malformed request."""

    code = "username_taken"
    status = 409

    def __init__(self) -> None:
        super().__init__(USERNAME_TAKEN, fields={"username": [USERNAME_TAKEN]})

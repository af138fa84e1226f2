"""Account errors, in the project's one hierarchy (``pools.errors.PaasError``)."""

from pools.errors import PaasError


class LockedOut(PaasError):
    """Too many failed login attempts; try again later."""

    code = "locked_out"
    status = 429

"""Deployment errors, in the project's one hierarchy (``pools.errors.PaasError``)."""

from pools.errors import PaasError


class QuotaExceeded(PaasError):
    """You already have as many active deployments as your quota allows."""

    code = "quota_exceeded"
    status = 429


class NotReady(PaasError):
    """Your container is being prepared; try again in a moment."""

    code = "not_ready"
    status = 409


class Released(PaasError):
    """This deployment was released; it can only be read."""

    code = "released"
    status = 410


class ExtendRefused(PaasError):
    """This deployment's lifetime cannot be extended."""

    code = "extend_refused"
    status = 409


class ShareExceeded(PaasError):
    """You already hold as many containers of this runtime as one user may."""

    code = "share_exceeded"
    status = 429

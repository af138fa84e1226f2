"""The project's domain errors: one small hierarchy, turned into HTTP in one place.

Every error carries a machine-readable ``code`` and the HTTP ``status`` the API answers
with (see ``paas_project/api_errors.py``); commands print ``str(error)``.
"""


class PaasError(Exception):
    code = "error"
    status = 400
    retry_after: int | None = None  # seconds, sent as Retry-After when set

    def __init__(self, detail: str = "", *, fields: dict[str, list[str]] | None = None):
        super().__init__(detail or self.__class__.__doc__ or self.code)
        self.detail = detail or (self.__class__.__doc__ or self.code).strip()
        self.fields = fields


class InvalidInput(PaasError):
    """The request is not valid."""

    code = "invalid"
    status = 400


class UnknownRuntime(InvalidInput):
    """No such runtime."""


class UnsafeUpload(InvalidInput):
    """The upload is unsafe and was rejected."""

    code = "unsafe_upload"


class UploadTooLarge(PaasError):
    """The upload is larger than allowed."""

    code = "too_large"
    status = 413


class NotFound(PaasError):
    """Not found."""

    code = "not_found"
    status = 404


class PoolExhausted(PaasError):
    """No idle container of this runtime is available right now."""

    code = "pool_exhausted"
    status = 503
    retry_after = 10


class PortRangeExhausted(PaasError):
    """The runtime's port range has no free port left."""

    code = "port_range_exhausted"
    status = 409


class EngineError(PaasError):
    """The Docker engine refused the operation."""

    code = "engine_error"
    status = 502


class EngineUnavailable(EngineError):
    """The Docker engine is not reachable."""

    code = "engine_unavailable"
    status = 503


class ImageMissing(EngineError):
    """A runtime image is missing."""

    code = "image_missing"
    status = 503


class RuntimeMisconfigured(PaasError):
    """The runtime's settings cannot give a container (no image, for one)."""

    code = "runtime_misconfigured"
    status = 409

"""The error envelope for the OpenAPI schema (see ``paas_project/api_errors.py``):
every error answer is ``{"detail", "code", "fields"?}``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

# Built with ``inline_serializer``: a field named "fields" cannot be a class attribute
# of a Serializer (it is the serializer's own field map).
ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(help_text="Machine-readable, e.g. invalid, "
                                                "not_found, quota_exceeded, pool_exhausted."),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False,
            help_text="For 400 invalid: field name → messages.",
        ),
    },
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


ERRORS: dict[int, OpenApiResponse] = {
    400: _error("invalid: the request is not valid (see fields)"),
    401: _error("not_authenticated / token_not_valid"),
    403: _error("permission_denied, or approval_pending: the account waits for staff "
                "approval"),
    404: _error("not_found: no such deployment of yours"),
    409: _error("extend_refused: the lifetime cannot be extended (again); "
                "username_taken: an account of this name exists (in any case)"),
    410: _error("released: the deployment was released"),
    413: _error("too_large: the upload is over the limit"),
    429: _error("throttled, locked_out, quota_exceeded or share_exceeded"),
    502: _error("engine_error: Docker refused the operation"),
    503: _error("pool_exhausted or engine_unavailable"),
}

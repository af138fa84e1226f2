"""One exception handler: every API error is ``{"detail", "code", "fields"?}``."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from pools.errors import PaasError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PaasError):
        answer = _error(exc.status, exc.detail, exc.code, exc.fields)
        if exc.retry_after:
            answer["Retry-After"] = str(exc.retry_after)
        return answer
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        body = {"detail": str(exc.detail), "code": "throttled"}
    elif isinstance(exc.detail, dict) and "detail" in exc.detail:
        # simplejwt's errors carry {"detail", "code", "messages"?}: keep its message and code.
        body = {"detail": str(exc.detail["detail"]), "code": str(exc.detail.get("code", "error"))}
    else:
        codes = exc.get_codes()
        body = {"detail": str(exc.detail), "code": codes if isinstance(codes, str) else "error"}
    response.data = body
    return response


def _error(status_code: int, detail: str, code: str,
           fields: dict[str, list[str]] | None = None) -> Response:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if fields:
        body["fields"] = fields
    return Response(body, status=status_code)


def _validation_body(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        fields = {key: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
                  for key, msgs in detail.items()}
        non_field = fields.pop("non_field_errors", None)
        first = non_field[0] if non_field else "; ".join(
            f"{key}: {msgs[0]}" for key, msgs in fields.items())
        body: dict[str, Any] = {"detail": first or "invalid input", "code": "invalid"}
        if fields:
            body["fields"] = fields
        return body
    messages = [str(m) for m in detail] if isinstance(detail, list) else [str(detail)]
    return {"detail": "; ".join(messages) or "invalid input", "code": "invalid"}


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 (``handler404``): under /api/ the error envelope, also for paths no
    URL pattern matches (an id that is not a number); elsewhere the plain page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 (``handler500``): the error envelope under /api/."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"},
                            status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 (``handler400``: a malformed request Django itself refused, e.g. a
    body field over DATA_UPLOAD_MAX_MEMORY_SIZE): the error envelope under /api/."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Bad request.", "code": "invalid"}, status=400)
    return defaults.bad_request(request, exception)


__all__ = ["exception_handler", "status"]

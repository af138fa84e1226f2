"""What a locked-out client gets (django-axes calls this)."""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from accounts.errors import LockedOut


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    error = LockedOut()
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": error.detail, "code": error.code}, status=error.status)
    return render(request, "accounts/locked_out.html", {"detail": error.detail},
                  status=error.status)

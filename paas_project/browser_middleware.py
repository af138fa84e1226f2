"""Django's browser-session middleware, passed by for bearer-token API requests.

Sessions, ``request.user`` from the session and flash messages serve the pages and the
cookie-authenticated API. A request to ``/api/`` that carries ``Authorization: Bearer …``
never uses them: DRF's JWT authentication answers it (a bad token is a 401; it never
falls through to the session). Skipping them cut a claim's CPU in the web process.

Security headers, metrics, the body limit, django-axes and the CSRF middleware stay in
``MIDDLEWARE`` unwrapped: they run for every request. (CSRF costs a bearer request
next to nothing, since every API view is exempt and DRF's ``SessionAuthentication``
does its own check, and ``check --deploy`` wants Django's own class listed.)
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Sessions
from django.http import HttpRequest, HttpResponse


def bearer_api_request(request: HttpRequest) -> bool:
    return (request.path_info.startswith("/api/")
            and request.META.get("HTTP_AUTHORIZATION", "").startswith("Bearer "))


class _BrowserOnly:
    """Mixed in before a ``MiddlewareMixin`` middleware (one without ``process_view``):
    a bearer API request goes straight through."""

    get_response: Any

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if bearer_api_request(request):
            return self.get_response(request)  # type: ignore[no-any-return]
        return super().__call__(request)  # type: ignore[misc,no-any-return]


class SessionMiddleware(_BrowserOnly, _Sessions):
    pass


class AuthenticationMiddleware(_BrowserOnly, _Authentication):
    pass


class MessageMiddleware(_BrowserOnly, _Messages):
    pass


"""Django's browser-session middleware, passed by for bearer-token API requests.

Sessions, the CSRF cookie, ``request.user`` from the session and flash messages serve
the pages and the cookie-authenticated API. A request to ``/api/`` that carries
``Authorization: Bearer …`` never uses them: DRF's JWT authentication answers it (a
bad token is a 401; it never falls through to the session), every API view is
CSRF-exempt and does its own check (DRF's ``SessionAuthentication``), and a browser
cannot send that header cross-site without a CORS preflight we never grant. Skipping
them cut a claim's CPU in the web process (docs/BENCHMARKS.md).

Security headers, metrics, the body limit and django-axes stay in ``MIDDLEWARE``
unwrapped: they run for every request.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Sessions
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.middleware.csrf import CsrfViewMiddleware as _Csrf


def bearer_api_request(request: HttpRequest) -> bool:
    return (request.path_info.startswith("/api/")
            and request.META.get("HTTP_AUTHORIZATION", "").startswith("Bearer "))


class _BrowserOnly:
    """Mixed in before a ``MiddlewareMixin`` middleware: a bearer API request goes
    straight through (``process_view`` too, for the middleware that has one)."""

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


class CsrfViewMiddleware(_BrowserOnly, _Csrf):
    def process_view(self, request: HttpRequest, callback: Any, callback_args: Any,
                     callback_kwargs: Any) -> HttpResponseForbidden | None:
        if bearer_api_request(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)

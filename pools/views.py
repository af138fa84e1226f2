"""The pages of ``pools`` outside the admin: Caddy's ``ask`` endpoint for on-demand TLS,
and ``/metrics`` for Prometheus — readable with the metrics token, as a staff user (JWT or
session) or from an allowed client address; nobody else, so it is never open to the
internet by default."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from pools import hostnames, metrics


@require_safe
def caddy_ask(request: HttpRequest) -> HttpResponse:
    """200 when Caddy may get a certificate for ``?domain=`` (the platform's domain or an
    active deployment's hostname), else 404 — which makes Caddy refuse the handshake, so
    nobody can have us request certificates for names of their choosing."""
    if hostnames.hostname_known(request.GET.get("domain", "")):
        return HttpResponse("yes", content_type="text/plain")
    return HttpResponse("no", status=404, content_type="text/plain")


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    allowed, why = metrics_access(request)
    if not allowed:
        status = 401 if why == "not_authenticated" else 403
        response = JsonResponse({"detail": "metrics are for staff, the metrics token or "
                                 "allowed addresses (PAAS_METRICS_ALLOW)", "code": why},
                                status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.metrics_render()
    return HttpResponse(body, content_type=content_type)


def metrics_access(request: HttpRequest) -> tuple[bool, str]:
    """(allowed, reason code when not)."""
    if _address_allowed(client_address(request)):
        return True, ""
    if getattr(request, "user", None) is not None and request.user.is_staff:
        return True, ""  # an operator's admin session
    token = _bearer(request)
    if not token:
        return False, "not_authenticated"
    if settings.PAAS_METRICS_TOKEN and hmac.compare_digest(
            token.encode(), settings.PAAS_METRICS_TOKEN.encode()):
        return True, ""
    return (True, "") if _staff_jwt(token) else (False, "permission_denied")


def client_address(request: HttpRequest) -> str:
    """The real client's address. The one place to swap for the trusted-proxy helper
    (behind Caddy every request comes from 127.0.0.1)."""
    return str(request.META.get("REMOTE_ADDR", ""))


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(entry, strict=False)
               for entry in settings.PAAS_METRICS_ALLOW)


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _staff_jwt(token: str) -> bool:
    auth = JWTAuthentication()
    try:
        user = auth.get_user(auth.get_validated_token(token.encode()))
    except (InvalidToken, TokenError, AuthenticationFailed):
        return False
    return bool(user.is_active and getattr(user, "is_staff", False))

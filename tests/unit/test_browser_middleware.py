"""Bearer-token API requests pass by the browser-session middleware
(paas_project.browser_middleware), and lose nothing a user or an attacker would notice:
the same security headers, CSRF still guarding cookie-authenticated API calls, the token
view's lockout."""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from tests.unit.api_helpers import PASSWORD

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db

SECURITY_HEADERS = ["X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                    "Cross-Origin-Opener-Policy", "Content-Security-Policy",
                    "Permissions-Policy"]


def test_a_bearer_request_gets_every_security_header(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    session = Client()
    session.force_login(alice)  # type: ignore[arg-type]
    cookie_answer = session.get("/api/deployments/")
    bearer_answer = api(alice).get("/api/deployments/")
    assert cookie_answer.status_code == bearer_answer.status_code == 200
    for header in SECURITY_HEADERS:
        assert bearer_answer.headers.get(header), header
        assert bearer_answer.headers[header] == cookie_answer.headers[header], header


def test_the_session_middleware_is_not_run_for_bearer_requests(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    session = Client()
    session.force_login(alice)  # type: ignore[arg-type]
    with mock.patch.object(SessionMiddleware, "process_request", autospec=True,
                           side_effect=SessionMiddleware.process_request) as sessions, \
            mock.patch.object(AuthenticationMiddleware, "process_request", autospec=True,
                              side_effect=AuthenticationMiddleware.process_request) as auth:
        assert api(alice).get("/api/deployments/").status_code == 200
        assert (sessions.call_count, auth.call_count) == (0, 0)
        assert session.get("/api/deployments/").status_code == 200  # cookies: still run
        assert (sessions.call_count, auth.call_count) == (1, 1)


def test_a_cookie_authenticated_api_write_still_needs_the_csrf_token(
        alice: AbstractUser, warm: Callable) -> None:
    warm("nginx", 1)
    session = Client(enforce_csrf_checks=True)
    session.force_login(alice)  # type: ignore[arg-type]
    refused = session.post("/api/deployments/", {"runtime": "nginx"},
                           content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    # a made-up bearer header on a path outside the API does not lift the check either
    assert session.post("/dashboard/", HTTP_AUTHORIZATION="Bearer x").status_code == 403
    session.get("/dashboard/")  # sets the CSRF cookie, as a page would
    token = session.cookies["csrftoken"].value
    allowed = session.post("/api/deployments/", {"runtime": "nginx"},
                           content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 201


def test_the_token_view_locks_out_with_a_bearer_header_too(
        settings: SettingsWrapper, alice: AbstractUser) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    def login(password: str) -> tuple[int, dict]:
        response = client.post("/api/auth/token/", {"username": "alice",
                                                    "password": password}, format="json")
        return response.status_code, response.json()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login("wrong")[0] == 401
    assert login("wrong") == (429, mock.ANY) and login(PASSWORD)[1]["code"] == "locked_out"


def test_the_browsable_api_still_renders_for_a_bearer_request(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    response = api(alice).get("/api/deployments/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"alice" in response.content

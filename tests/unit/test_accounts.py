"""Accounts: registration, JWT tokens (rotation, logout, bad tokens), lockout,
throttling, and the per-user quota."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Quota
from accounts.selectors import user_quota
from tests.unit.api_helpers import PASSWORD

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db
User = get_user_model()


def register(client: APIClient, **overrides: str) -> tuple[int, dict]:
    body = {"username": "dave", "email": "dave@example.com", "password": "correct-Horse-7"}
    body.update(overrides)
    response = client.post("/api/auth/register/", body, format="json")
    return response.status_code, response.json()


def login(client: APIClient, username: str, password: str = PASSWORD) -> tuple[int, dict]:
    response = client.post("/api/auth/token/", {"username": username, "password": password},
                           format="json")
    return response.status_code, response.json()


# --- registration -----------------------------------------------------------------------
def test_register_creates_a_plain_user_who_can_log_in() -> None:
    client = APIClient()
    status, body = register(client)
    assert status == 201
    assert body == {"id": body["id"], "username": "dave", "email": "dave@example.com"}
    user = User.objects.get(username="dave")
    assert not user.is_staff and user.is_active and user.check_password("correct-Horse-7")
    status, tokens = login(client, "dave", "correct-Horse-7")
    assert status == 200 and set(tokens) == {"access", "refresh"}


@pytest.mark.parametrize("password, message", [
    ("short1A", "too short"),
    ("password123", "too common"),
    ("83920174659", "entirely numeric"),
    ("dave-example", "too similar"),
])
def test_register_applies_djangos_password_validators(password: str, message: str) -> None:
    status, body = register(APIClient(), password=password)
    assert status == 400 and body["code"] == "invalid"
    assert message in " ".join(body["fields"]["password"])
    assert not User.objects.filter(username="dave").exists()


def test_register_refuses_a_taken_username_in_any_case(alice: AbstractUser) -> None:
    status, body = register(APIClient(), username="Alice")
    assert status == 409 and body["code"] == "username_taken"
    assert "taken" in body["fields"]["username"][0]
    assert User.objects.count() == 1


@pytest.mark.parametrize("body", [{}, {"username": "dave"},
                                  {"username": "dave", "password": "correct-Horse-7"}])
def test_register_names_each_missing_field(body: dict) -> None:
    response = APIClient().post("/api/auth/register/", body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["code"] == "invalid"
    assert set(data["fields"]) == {"username", "email", "password"} - set(body)
    assert User.objects.count() == 0


def test_register_rejects_a_bad_email_and_a_bad_username() -> None:
    status, body = register(APIClient(), email="not-an-email", username="a b")
    assert status == 400 and set(body["fields"]) == {"email", "username"}
    assert User.objects.count() == 0


def test_register_with_malformed_json_is_a_parse_error() -> None:
    response = APIClient().post("/api/auth/register/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert User.objects.count() == 0


# --- tokens -----------------------------------------------------------------------------
def test_wrong_password_is_401_without_tokens(alice: AbstractUser) -> None:
    status, body = login(APIClient(), "alice", "wrong")
    assert status == 401 and body["code"] == "no_active_account"
    assert "access" not in body


def test_inactive_user_gets_no_token(alice: AbstractUser) -> None:
    User.objects.filter(pk=alice.pk).update(is_active=False)
    status, _ = login(APIClient(), "alice")
    assert status == 401


def test_access_token_opens_the_api_and_no_token_does_not(
        alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    client = APIClient()
    _, tokens = login(client, "alice")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get("/api/deployments/").status_code == 200
    anonymous = api().get("/api/deployments/")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_access_token_is_refused(alice: AbstractUser) -> None:
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=timedelta(seconds=-1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/deployments/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Given token not valid for any token type",
                               "code": "token_not_valid"}


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer a.b.c", "Bearer "])
def test_garbage_token_is_refused(alice: AbstractUser, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/deployments/")
    assert response.status_code == 401
    assert response.json()["code"] in ("token_not_valid", "bad_authorization_header")


def test_token_signed_with_another_key_is_refused(alice: AbstractUser) -> None:
    import jwt

    forged = jwt.encode({"token_type": "access", "user_id": str(alice.pk), "jti": "x",
                         "exp": 9999999999}, "a-forger-s-own-key-that-is-not-ours-at-all", algorithm="HS256")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get("/api/deployments/").status_code == 401


def test_refresh_rotates_and_the_old_refresh_token_is_then_refused(alice: AbstractUser) -> None:
    client = APIClient()
    _, tokens = login(client, "alice")
    first = client.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert first.status_code == 200
    rotated = first.json()
    assert set(rotated) == {"access", "refresh"} and rotated["refresh"] != tokens["refresh"]
    again = client.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401 and again.json()["code"] == "token_not_valid"
    # the new one still works
    assert client.post("/api/auth/token/refresh/", {"refresh": rotated["refresh"]},
                       format="json").status_code == 200


def test_logout_blacklists_the_refresh_token(alice: AbstractUser) -> None:
    client = APIClient()
    _, tokens = login(client, "alice")
    response = client.post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 205
    refused = client.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]},
                          format="json")
    assert refused.status_code == 401 and refused.json()["code"] == "token_not_valid"
    assert client.post("/api/auth/logout/", {"refresh": tokens["refresh"]},
                       format="json").status_code == 401


@pytest.mark.parametrize("body", [{}, {"refresh": "garbage"}])
def test_logout_with_a_bad_refresh_token_is_refused(body: dict) -> None:
    response = APIClient().post("/api/auth/logout/", body, format="json")
    assert response.status_code in (400, 401)
    assert response.json()["code"] in ("invalid", "token_not_valid")


def test_an_access_token_is_not_a_refresh_token(alice: AbstractUser) -> None:
    client = APIClient()
    _, tokens = login(client, "alice")
    response = client.post("/api/auth/token/refresh/", {"refresh": tokens["access"]},
                           format="json")
    assert response.status_code == 401


# --- brute force and throttling -----------------------------------------------------------
def test_lockout_after_repeated_failed_logins(
        settings: SettingsWrapper, alice: AbstractUser, bob: AbstractUser) -> None:
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "alice", "wrong")[0] == 401
    status, body = login(client, "alice", "wrong")
    assert status == 429 and body["code"] == "locked_out"
    # now even the right password is refused, and no token is handed out
    status, body = login(client, "alice")
    assert (status, body["code"]) == (429, "locked_out") and "access" not in body
    # the lockout is per user: bob from the same address still logs in
    assert login(client, "bob")[0] == 200


def test_a_success_resets_the_failure_count(settings: SettingsWrapper, alice: AbstractUser) -> None:
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "alice", "wrong")
    assert login(client, "alice")[0] == 200
    assert login(client, "alice", "wrong")[0] == 401  # counting starts again


def test_auth_endpoints_are_throttled(monkeypatch: pytest.MonkeyPatch, alice: AbstractUser) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/min"})
    client = APIClient()
    statuses = [login(client, "alice")[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, body = login(client, "alice")
    assert status == 429 and body["code"] == "throttled"
    # the scope covers registration too
    status, body = register(client)
    assert status == 429 and body["code"] == "throttled"
    assert not User.objects.filter(username="dave").exists()


# --- quota -----------------------------------------------------------------------------
def test_quota_defaults_to_the_platform_setting(
        settings: SettingsWrapper, alice: AbstractUser) -> None:
    settings.PAAS_USER_QUOTA = 4
    assert user_quota(user=alice) == 4
    Quota.objects.create(user=alice, max_deployments=None)
    assert user_quota(user=alice) == 4


def test_quota_set_by_staff_wins(alice: AbstractUser, bob: AbstractUser) -> None:
    Quota.objects.create(user=alice, max_deployments=0)
    assert user_quota(user=alice) == 0
    assert user_quota(user=bob) == 3


def test_staff_edit_a_users_quota_in_the_user_admin(
        charlie: AbstractUser, alice: AbstractUser) -> None:
    from django.test import Client

    admin = Client()
    admin.force_login(charlie)  # type: ignore[arg-type]
    page = admin.get(f"/admin/auth/user/{alice.pk}/change/")
    assert page.status_code == 200
    assert b"quota-0-max_deployments" in page.content

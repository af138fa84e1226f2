"""The sign-up policy: open, invite-only and staff-approval modes, class invite codes,
the per-address sign-up limit (API and page) and the invite holders' exemption."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Admission, InviteCode, SignupPolicy
from accounts.selectors import signup_policy
from deployments.models import Deployment

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
User_ = get_user_model()


def set_mode(mode: str) -> None:
    SignupPolicy.objects.update_or_create(pk=1, defaults={"mode": mode})


def register(client: APIClient, name: str = "dave", **extra: str) -> tuple[int, dict]:
    body = {"username": name, "email": f"{name}@example.com", "password": "correct-Horse-7",
            **extra}
    response = client.post("/api/auth/register/", body, format="json")
    return response.status_code, response.json()


def launch(user: AbstractUser) -> tuple[int, dict]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    response = client.post("/api/deployments/", {"runtime": "nginx"}, format="json")
    return response.status_code, response.json()


def login(client: APIClient, name: str) -> int:
    return client.post("/api/auth/token/", {"username": name, "password": "correct-Horse-7"},
                       format="json").status_code


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``limit(signup="2/hour", auth="3/min")``: throttle rates for this test."""

    def set_rates(**rates: str) -> None:
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES",
                            {"auth": "1000/min", "signup": "1000/hour", **rates})

    return set_rates


# --- the setting and its row ------------------------------------------------------------
def test_the_mode_starts_from_the_setting_and_is_then_the_admins(
        settings: SettingsWrapper) -> None:
    settings.PAAS_SIGNUP_MODE = "approval"
    assert signup_policy().mode == "approval"
    settings.PAAS_SIGNUP_MODE = "open"  # the environment sets the initial value only
    assert signup_policy().mode == "approval"


def test_staff_change_the_mode_in_the_admin(operator: Client) -> None:
    assert operator.get("/admin/accounts/signuppolicy/").status_code == 200
    response = operator.post("/admin/accounts/signuppolicy/1/change/", {"mode": "invite"})
    assert response.status_code == 302
    assert signup_policy().mode == "invite"


# --- open ------------------------------------------------------------------------------------
def test_open_sign_up_may_launch_at_once(warm: Callable) -> None:
    warm("nginx", 1)
    assert register(APIClient())[0] == 201
    status, body = launch(User_.objects.get(username="dave"))
    assert status == 201, body


# --- invite-only ---------------------------------------------------------------------------
def test_invite_mode_refuses_a_sign_up_without_a_code_and_creates_nothing() -> None:
    set_mode("invite")
    status, body = register(APIClient())
    assert status == 400 and body["code"] == "invite_required"
    assert "invite_code" in body["fields"]
    assert not User_.objects.filter(username="dave").exists()


@pytest.mark.parametrize("invite", [
    {"code": "OLD", "expires_at": timezone.now() - timedelta(minutes=1)},
    {"code": "FULL", "max_uses": 1, "uses": 1},
    {"code": "OFF", "active": False},
])
def test_invite_mode_refuses_an_expired_used_up_or_inactive_code(invite: dict) -> None:
    set_mode("invite")
    InviteCode.objects.create(**invite)
    status, body = register(APIClient(), invite_code=invite["code"])
    assert status == 400 and body["code"] == "invite_invalid"
    assert not User_.objects.filter(username="dave").exists()
    assert InviteCode.objects.get(code=invite["code"]).uses == invite.get("uses", 0)


def test_a_valid_code_admits_and_counts_its_uses(warm: Callable) -> None:
    set_mode("invite")
    InviteCode.objects.create(code="CLASS-7B", note="7B", max_uses=2)
    warm("nginx", 1)
    assert register(APIClient(), "s1", invite_code="class-7b")[0] == 201  # any case
    assert register(APIClient(), "s2", invite_code="CLASS-7B")[0] == 201
    status, body = register(APIClient(), "s3", invite_code="CLASS-7B")
    assert (status, body["code"]) == (400, "invite_invalid")  # used up
    assert InviteCode.objects.get().uses == 2
    assert Admission.objects.get(user__username="s1").invite.code == "CLASS-7B"
    assert launch(User_.objects.get(username="s1"))[0] == 201


# --- approval -------------------------------------------------------------------------------
def test_approval_mode_logs_in_but_cannot_launch_until_approved(
        warm: Callable, operator: Client) -> None:
    set_mode("approval")
    warm("nginx", 1)
    client = APIClient()
    assert register(client)[0] == 201
    assert login(client, "dave") == 200
    dave = User_.objects.get(username="dave")
    status, body = launch(dave)
    assert (status, body["code"]) == (403, "approval_pending")
    assert "approval" in body["detail"]
    assert not Deployment.objects.exists()
    # staff approve in the user admin; then the launch goes through
    response = operator.post("/admin/auth/user/", {"action": "approve",
                                                   "_selected_action": [dave.pk]})
    assert response.status_code == 302
    assert Admission.objects.get(user=dave).approved_by.username == "charlie"
    assert launch(dave)[0] == 201


def test_approval_mode_admits_an_invite_holder_at_once(warm: Callable) -> None:
    set_mode("approval")
    InviteCode.objects.create(code="LAB")
    warm("nginx", 1)
    assert register(APIClient(), invite_code="LAB")[0] == 201
    assert launch(User_.objects.get(username="dave"))[0] == 201


def test_users_made_by_operators_are_admitted(alice: AbstractUser, warm: Callable) -> None:
    set_mode("approval")
    warm("nginx", 1)
    assert launch(alice)[0] == 201


# --- per-address limits -------------------------------------------------------------------
def test_sign_ups_per_address_are_limited(limit: Callable[..., None]) -> None:
    limit(signup="2/hour")
    client = APIClient()
    assert register(client, "a1")[0] == 201
    assert register(client, "a2")[0] == 201
    status, body = register(client, "a3")
    assert (status, body["code"]) == (429, "throttled")
    assert not User_.objects.filter(username="a3").exists()
    # another address is not affected
    assert register(APIClient(REMOTE_ADDR="10.9.9.9"), "b1")[0] == 201


def test_a_class_behind_one_address_signs_up_logs_in_and_launches(
        limit: Callable[..., None], warm: Callable) -> None:
    limit(signup="2/hour", auth="3/min")
    set_mode("invite")
    InviteCode.objects.create(code="NAT-CLASS", max_uses=10)
    warm("nginx", 8)
    client = APIClient()  # every student from the same address
    for n in range(8):
        assert register(client, f"s{n}", invite_code="NAT-CLASS")[0] == 201
    assert [login(client, f"s{n}") for n in range(8)] == [200] * 8
    assert all(launch(User_.objects.get(username=f"s{n}"))[0] == 201 for n in range(8))


def test_the_exemption_ends_with_the_code(limit: Callable[..., None], alice: AbstractUser) -> None:
    limit(auth="3/min")
    invite = InviteCode.objects.create(code="TERM", expires_at=timezone.now() + timedelta(days=1))
    client = APIClient()
    assert register(client, invite_code="TERM")[0] == 201
    invite.expires_at = timezone.now() - timedelta(seconds=1)
    invite.save()
    # a plain account on the same address uses up the address's login budget...
    assert [login(client, "dave") for _ in range(3)] == [200, 200, 200]
    assert login(client, "dave") == 429  # ...and the expired code no longer lifts it


# --- the page ---------------------------------------------------------------------------------
def page_register(client: Client, name: str, **extra: str) -> object:
    return client.post("/register/", {"username": name, "email": f"{name}@example.com",
                                      "password1": "a-Long-pass-42",
                                      "password2": "a-Long-pass-42", **extra})


def test_the_page_limits_sign_ups_per_address_like_the_api(limit: Callable[..., None]) -> None:
    limit(signup="1/hour")
    assert page_register(Client(), "p1").status_code == 302  # type: ignore[attr-defined]
    response = page_register(Client(), "p2")
    assert response.status_code == 429  # type: ignore[attr-defined]
    assert "Too many sign-ups" in response.content.decode()  # type: ignore[attr-defined]
    assert not User_.objects.filter(username="p2").exists()
    # the API shares the address's count
    assert register(APIClient(), "p3")[0] == 429


def test_the_page_asks_for_the_code_in_invite_mode() -> None:
    set_mode("invite")
    client = Client()
    assert "invite code only" in client.get("/register/").content.decode()
    response = page_register(client, "p1")
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert "Sign-up needs an invite code" in response.content.decode()  # type: ignore[attr-defined]
    assert not User_.objects.filter(username="p1").exists()
    InviteCode.objects.create(code="PAGE")
    assert page_register(client, "p1", invite_code="PAGE").status_code == 302  # type: ignore[attr-defined]


def test_the_page_says_an_account_waits_for_approval(warm: Callable) -> None:
    set_mode("approval")
    warm("nginx", 1)
    client = Client()
    response = client.post("/register/", {"username": "p1", "email": "p1@example.com",
                                          "password1": "a-Long-pass-42",
                                          "password2": "a-Long-pass-42"}, follow=True)
    assert "waits for staff approval" in response.content.decode()
    response = client.post("/deployments/launch/", {"runtime": "nginx"}, follow=True)
    assert "waiting for staff approval" in response.content.decode()
    assert not Deployment.objects.exists()


def test_the_schema_documents_the_invite_code() -> None:
    schema = APIClient().get("/api/schema/?format=json").json()
    props = schema["components"]["schemas"]["RegisterRequest"]["properties"]  # request body
    assert "invite_code" in props



def test_staff_make_an_invite_code_in_the_admin(operator: Client) -> None:
    assert operator.get("/admin/accounts/invitecode/add/").status_code == 200
    response = operator.post("/admin/accounts/invitecode/add/", {
        "code": "SPRING", "note": "class 3", "max_uses": "60", "active": "on"})
    assert response.status_code == 302
    assert InviteCode.objects.get(code="SPRING").max_uses == 60

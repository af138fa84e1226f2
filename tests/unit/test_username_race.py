"""The case-insensitive username check cannot race the unique constraint: two
registrations of "alice" and "ALICE" that both pass the check (as two racing requests
do) still end with one account, and the loser gets a clear 409 (the page: the form
says so), never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import AbstractUser
from django.db.models import QuerySet
from django.test import Client
from rest_framework.test import APIClient

from accounts.errors import UsernameTaken
from accounts.services import user_register

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db
User = get_user_model()


def _names() -> list[str]:
    return sorted(User.objects.values_list("username", flat=True))


def test_the_service_refuses_a_name_taken_in_another_case(
        alice: AbstractUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QuerySet, "exists", lambda self: False)  # as if racing
    with pytest.raises(UsernameTaken) as caught:
        user_register(username="ALICE", email="a2@example.com", password="correct-Horse-7")
    assert caught.value.fields == {"username": ["This username is already taken."]}
    assert _names() == ["alice"]


def test_api_registration_that_raced_past_the_check_is_a_409(
        alice: AbstractUser, monkeypatch: pytest.MonkeyPatch) -> None:
    # The check ran before alice's row was committed: it saw no "alice".
    monkeypatch.setattr(QuerySet, "exists", lambda self: False)
    response = APIClient().post("/api/auth/register/", {
        "username": "Alice", "email": "a2@example.com", "password": "correct-Horse-7"},
        format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "This username is already taken.",
                               "code": "username_taken",
                               "fields": {"username": ["This username is already taken."]}}
    assert _names() == ["alice"]


def test_page_registration_that_raced_past_the_check_says_taken(
        alice: AbstractUser, monkeypatch: pytest.MonkeyPatch) -> None:
    def unchecked(self: Any) -> str:
        return str(self.cleaned_data.get("username"))

    monkeypatch.setattr(UserCreationForm, "clean_username", unchecked)
    response = Client().post("/register/", {
        "username": "ALICE", "email": "a2@example.com",
        "password1": "a-Long-pass-42", "password2": "a-Long-pass-42"})
    assert response.status_code == 200
    assert "This username is already taken." in response.content.decode()
    assert _names() == ["alice"]

"""API input and output for accounts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

User = get_user_model()


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z", max_length=150,
        error_messages={"invalid": "Use letters, digits and @/./+/-/_ only."},
    )
    email = serializers.EmailField(max_length=254)
    # The rules a schema can say (Django's validators also refuse common passwords and
    # ones too like the user's name or email): 8 to 128 characters, not only digits
    # (and, as every text field, no NUL character).
    password = serializers.RegexField(
        r"^(?=.*\D)[^\x00]*$", min_length=8, max_length=128, write_only=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="8 to 128 characters, not only digits, not a common password, not "
                  "too like the username or email.",
        error_messages={
            "invalid": "This password is entirely numeric (or holds a NUL character).",
            "min_length": "This password is too short. It must contain at least 8 characters.",
        },
    )
    invite_code = serializers.CharField(
        required=False, allow_blank=True, max_length=64, default="",
        help_text="A class invite code: required when sign-up is invite-only; admits at "
                  "once when staff approval is on, and exempts the sign-up from the "
                  "per-address limit.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Django's validators, with the user's own name and email (similarity check).
        candidate = User(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()

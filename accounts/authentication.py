"""API authentication: simplejwt's, with what a launch needs read in the same query.

The user row is still read on every request (a deactivated user or a changed password
takes effect at once, with no cache to invalidate); joining the user's quota and
admission rows saves the launch two queries of its own (``accounts.selectors``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from accounts.selectors import LAUNCH_RELATIONS, LAUNCH_ROWS_JOINED


class _UsersWithLaunchData:
    """Stands in for the user model in simplejwt's look-up, which uses only
    ``objects.get`` and ``DoesNotExist``."""

    def __init__(self) -> None:
        model = get_user_model()
        self.DoesNotExist = model.DoesNotExist
        self.objects = model.objects.select_related(*LAUNCH_RELATIONS)


class JWTWithLaunchData(JWTAuthentication):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_model = _UsersWithLaunchData()  # type: ignore[assignment]

    def get_user(self, validated_token: Token) -> Any:
        user = super().get_user(validated_token)
        # Marked, so the selectors trust these joined rows and no other cached ones (a
        # user object kept around may hold a relation cached long ago).
        setattr(user, LAUNCH_ROWS_JOINED, True)  # noqa: B010
        return user


class JWTWithLaunchDataScheme(SimpleJWTScheme):
    """The OpenAPI schema documents it as the bearer JWT it is."""

    target_class = "accounts.authentication.JWTWithLaunchData"

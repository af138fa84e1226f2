"""The accounts API: registration, JWT tokens (with brute-force lockout), logout.

Every endpoint here is throttled per client address with the ``auth`` scope, and
registration also with the ``signup`` scope; invite-code holders are exempt
(``accounts.throttles``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt import views as jwt_views

from accounts.api_docs import ERRORS
from accounts.errors import LockedOut
from accounts.serializers import LogoutSerializer, RegisterSerializer, UserSerializer
from accounts.services import user_register
from accounts.throttles import AuthThrottle, SignupThrottle


class AuthThrottled:
    throttle_classes: Sequence[type[BaseThrottle]] = [AuthThrottle]
    throttle_scope = "auth"


class RegisterView(AuthThrottled, APIView):
    """Sign up under the sign-up policy: in ``invite`` mode an ``invite_code`` is
    required (400 ``invite_required`` / ``invite_invalid``); in ``approval`` mode the new
    account can log in but not launch (403 ``approval_pending``) until staff approve it,
    unless it came with a valid invite code. Sign-ups per client address are limited
    (429 ``throttled``); invite-code sign-ups are exempt."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = [AuthThrottle, SignupThrottle]

    @extend_schema(
        request=RegisterSerializer,
        responses={201: UserSerializer, 400: ERRORS[400], 409: ERRORS[409],
                   429: ERRORS[429]},
        summary="Create an account",
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_register(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenObtainView(AuthThrottled, jwt_views.TokenObtainPairView):
    """Username and password → an access and a refresh token. After
    ``AXES_FAILURE_LIMIT`` failures the client is locked out (429 ``locked_out``)."""

    @extend_schema(responses={400: ERRORS[400], 401: ERRORS[401], 429: ERRORS[429]},
                   summary="Log in")
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except AuthenticationFailed:
            # django-axes flags the request it is given: simplejwt hands it DRF's
            # Request, so the flag lands on this wrapper, where AxesMiddleware (which
            # sees Django's request) would never find it. Raise the lockout ourselves.
            if getattr(request, "axes_locked_out", False):
                raise LockedOut() from None
            raise
        # A token is a login: tell axes (it resets the failure count) and Django.
        user = serializer.user  # type: ignore[attr-defined]
        user_logged_in.send(sender=type(user), request=request, user=user)
        return Response(serializer.validated_data, status=status.HTTP_200_OK)


class TokenRefreshView(AuthThrottled, jwt_views.TokenRefreshView):
    """A refresh token → a new access and refresh token; the old refresh token is
    blacklisted (rotation) and refused from then on."""

    @extend_schema(responses={400: ERRORS[400], 401: ERRORS[401], 429: ERRORS[429]},
                   summary="Refresh tokens")
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class LogoutView(AuthThrottled, jwt_views.TokenBlacklistView):
    """Blacklist the refresh token: it can no longer be refreshed."""

    @extend_schema(
        request=LogoutSerializer,
        responses={205: OpenApiResponse(description="Logged out"), 400: ERRORS[400],
                   401: ERRORS[401], 429: ERRORS[429]},
        summary="Log out",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        super().post(request, *args, **kwargs)
        return Response(status=status.HTTP_205_RESET_CONTENT)

"""Per-client-address throttles of the account endpoints and the sign-up page.

Built on DRF's throttle machinery, so whatever ``get_ident`` decides is the client's
address (behind trusted proxies) and wherever the counts are kept (the cache) applies to
the pages as well: the page views call these same classes on Django's request.

Invite-code holders are exempt: a whole class often signs up and logs in from one NAT
address. A sign-up is exempt when it carries a current invite code; a login when the
account signed up with one."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from accounts.selectors import invite_holder, invite_lookup
from paas_project.client_ip import client_ip


def _field(request: Any, name: str) -> str:
    """A posted field of a DRF request (``data``) or a Django one (``POST``)."""
    data = getattr(request, "data", None)
    if data is None:
        data = request.POST
    value = data.get(name, "") if hasattr(data, "get") else ""
    # Raw input, read before the serializer validates it: a NUL would make PostgreSQL
    # refuse the look-up (a 500). No username or code holds one, so it matches nothing.
    return value if isinstance(value, str) and "\x00" not in value else ""


def invite_exempt(request: Any) -> bool:
    return (invite_lookup(code=_field(request, "invite_code")) is not None
            or invite_holder(username=_field(request, "username")))


class ClientAddress:
    """Counts per ``client_ip`` (PAAS_TRUSTED_PROXIES), not per DRF's own reading of
    ``X-Forwarded-For``, which trusts whatever the client sends."""

    def get_ident(self, request: Any) -> str:
        return client_ip(request)


class AuthThrottle(ClientAddress, ScopedRateThrottle):
    """The ``auth`` scope (log in, refresh, log out, register), minus invite holders."""

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if invite_exempt(request):
            return None  # no key: not counted, not throttled
        return super().get_cache_key(request, view)


class SignupThrottle(ClientAddress, SimpleRateThrottle):
    """New accounts per client address (``signup`` scope), minus invite-code sign-ups."""

    scope = "signup"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if invite_lookup(code=_field(request, "invite_code")) is not None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def signup_allowed(request: HttpRequest) -> tuple[bool, float | None]:
    """For the sign-up page: may this address sign up now, and if not, in how many
    seconds? Counts the attempt like the API does."""
    throttle = SignupThrottle()
    if throttle.allow_request(request, None):  # type: ignore[arg-type]
        return True, None
    return False, throttle.wait()


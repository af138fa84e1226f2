"""A slot's hostnames under ``PAAS_APPS_DOMAIN``: the random slug each new user gets and
the alias a user may choose. These fields are the truth Caddy's routes are made from
(``pools.proxy``); a change here is followed by a route sync in the background, never
on the claim path."""

from __future__ import annotations

import logging
import re
import secrets
import string
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from pools import proxy
from pools.errors import InvalidInput
from pools.models import PoolContainer, SlotStatus

log = logging.getLogger(__name__)

SLUG_LENGTH = 12  # 26 * 36**11 ≈ 2**62 names: unguessable
HOSTNAMES_CLEARED: dict[str, Any] = {"slug": "", "alias": "", "suspended": False}
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED = frozenset({
    "www", "admin", "api", "app", "apps", "auth", "login", "logout", "register", "dashboard",
    "static", "media", "assets", "cdn", "docs", "help", "support", "status", "mail", "smtp",
    "imap", "pop", "ftp", "ns", "ns1", "ns2", "dns", "mx", "localhost", "caddy", "platform",
    "paas", "root", "abuse", "security", "postmaster", "webmaster", "hostmaster",
})
HELD = (SlotStatus.ASSIGNED, SlotStatus.RECOVERING, SlotStatus.FAILED)


def app_hostname(label: str) -> str:
    return proxy.app_hostname(label)


def https_url(hostname: str) -> str:
    port = settings.PAAS_HTTPS_PORT
    return f"https://{hostname}/" if port == 443 else f"https://{hostname}:{port}/"


def routed(slot: PoolContainer, label: str) -> bool:
    """Did the last route sync put ``label``'s hostname into Caddy for this slot?"""
    return bool(label) and app_hostname(label) in slot.routed_hosts.split()


def _in_use(label: str) -> bool:
    return PoolContainer.objects.filter(Q(slug=label) | Q(alias=label)).exists()


def slug_new() -> str:
    """A fresh random DNS label (starts with a letter) no slot uses as slug or alias."""
    while True:
        slug = secrets.choice(string.ascii_lowercase) + "".join(
            secrets.choice(string.ascii_lowercase + string.digits)
            for _ in range(SLUG_LENGTH - 1))
        if not _in_use(slug):
            return slug


def hostname_known(hostname: str) -> bool:
    """May Caddy get a certificate for ``hostname``? Only the platform's domain and the
    hostnames of assigned slots (the ``ask`` endpoint of on-demand TLS)."""
    hostname = hostname.lower().rstrip(".")
    if hostname == settings.PAAS_DOMAIN.lower():
        return True
    label = hostname.removesuffix("." + settings.PAAS_APPS_DOMAIN.lower())
    if label == hostname or not LABEL.match(label):
        return False
    return PoolContainer.objects.filter(Q(slug=label) | Q(alias=label),
                                        owner__isnull=False, status__in=HELD).exists()


# --- services ---------------------------------------------------------------------------
def slot_route_before_idle(*, slot_id: int, generation: int) -> str:
    """Give a freshly built slot a new slug and route it, before it turns idle (so a
    claim needs no Caddy call). Caddy being down does not hold the slot back: the claim
    works on the port URL and the next sync routes it. Returns the slug."""
    slug = slug_new()
    PoolContainer.objects.filter(pk=slot_id, generation=generation).update(
        **{**HOSTNAMES_CLEARED, "slug": slug}, routed_hosts="")
    if proxy.enabled():
        try:
            proxy.routes_sync()
        except proxy.ProxyError as exc:
            # Caddy refused the config: at least take the slot's old route out, so a
            # previous user's hostname cannot reach the next user's container.
            log.warning("route sync failed, removing slot %s's old route: %s", slot_id, exc)
            proxy.slot_route_remove(slot_id)
        except proxy.ProxyUnavailable as exc:
            log.warning("Caddy unreachable; slot %s's route waits for the next sync: %s",
                        slot_id, exc)
    return slug


def routes_reconcile() -> dict[str, Any]:
    """The reconcile pass's step: idle slots built before hostnames existed (an upgrade)
    get a slug, then Caddy's routes are repaired from the rows. Never raises."""
    filled = 0
    for pk in PoolContainer.objects.filter(status=SlotStatus.IDLE, slug="").values_list(
            "pk", flat=True):
        filled += PoolContainer.objects.filter(pk=pk, status=SlotStatus.IDLE, slug="").update(
            slug=slug_new())
    return {**proxy.routes_reconcile(), **({"slugs_given": filled} if filled else {})}


def alias_problem(alias: str) -> str:
    """Why ``alias`` cannot be a hostname label ("" when it can)."""
    if len(alias) > 63:
        return "at most 63 characters"
    if len(app_hostname(alias)) > 253:
        return "too long for a hostname under the apps domain"
    if not LABEL.match(alias):
        return ("lowercase letters, digits and hyphens only, starting and ending with "
                "a letter or digit")
    if alias in RESERVED:
        return f"'{alias}' is reserved"
    return ""


def slot_alias_set(*, slot: PoolContainer, alias: str) -> bool:
    """Name an assigned slot ``<alias>.<apps domain>`` ("" removes the name). The route
    follows in the background. Raises ``InvalidInput`` (field ``alias``) for a bad,
    reserved or taken name. Returns False when the slot is no longer held."""
    problem = alias_problem(alias) if alias else ""
    taken = PoolContainer.objects.filter(Q(slug=alias) | Q(alias=alias)).exclude(pk=slot.pk)
    if not problem and alias and taken.exists():
        problem = f"'{alias}' is already taken"
    if problem:
        raise InvalidInput(f"alias: {problem}", fields={"alias": [problem]})
    try:
        with transaction.atomic():
            changed = PoolContainer.objects.filter(
                pk=slot.pk, owner_id=slot.owner_id, owner__isnull=False, status__in=HELD,
            ).update(alias=alias)
            if changed:
                routes_sync_later()
    except IntegrityError:  # a racing request took the name a moment ago
        raise InvalidInput(f"alias: '{alias}' is already taken",
                           fields={"alias": [f"'{alias}' is already taken"]}) from None
    return bool(changed)


def slot_suspend(*, slot: PoolContainer, suspended: bool) -> bool:
    """An operator suspends an assigned slot's hostnames (a notice page instead of the
    app, e.g. after an abuse report) or lifts that. Returns True when it changed."""
    changed = PoolContainer.objects.filter(
        pk=slot.pk, owner__isnull=False, status__in=HELD).exclude(
        suspended=suspended).update(suspended=suspended)
    if changed:
        routes_sync_later()
    return bool(changed)


def routes_sync_later() -> None:
    from pools.services import _enqueue  # services imports this module

    if proxy.enabled():
        _enqueue("pools.tasks.routes_sync")

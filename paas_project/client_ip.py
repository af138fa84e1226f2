"""The real client address, from one setting: ``PAAS_TRUSTED_PROXIES``.

Every per-address limit (DRF throttling, django-axes lockout, and any to come) asks
``client_ip(request)``. ``X-Forwarded-For`` is trusted only as far as the proxies in
front of us vouch for it:

- empty (the default): no proxy is trusted; the address is ``REMOTE_ADDR``.
- a count ``N``: that many proxies sit in front; the address is the one the outermost of
  them saw, the N-th entry of ``X-Forwarded-For`` from the right (entries further left
  are whatever the client chose to send).
- addresses or networks (``127.0.0.1,10.0.0.0/8``): walking back from ``REMOTE_ADDR``
  through ``X-Forwarded-For``, the first address that is not one of these proxies.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(request: Any) -> str:
    """The client's address for ``request`` (Django's or DRF's request)."""
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    hops = [hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")]
    hops = [hop for hop in hops if hop]
    trusted = trusted_proxies(settings.PAAS_TRUSTED_PROXIES)
    if isinstance(trusted, int):
        return _by_count(remote, hops, trusted)
    return _by_address(remote, hops, trusted)


def _by_count(remote: str, hops: list[str], count: int) -> str:
    if count == 0 or not hops:
        return remote
    # Fewer entries than proxies: the leftmost is the furthest any proxy vouches for.
    return hops[-min(count, len(hops))]


def _by_address(remote: str, hops: list[str], proxies: tuple[Network, ...]) -> str:
    address = remote
    while hops and _is_proxy(address, proxies):
        address = hops.pop()
    return address


def _is_proxy(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address (a forged entry): never trusted
    return any(ip in network for network in proxies)


@lru_cache(maxsize=8)
def trusted_proxies(value: str) -> int | tuple[Network, ...]:
    """Parse ``PAAS_TRUSTED_PROXIES``: a count, or addresses/networks separated by
    commas. Raises ``ValueError`` naming the bad entry."""
    text = value.strip()
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"PAAS_TRUSTED_PROXIES: {entry!r} is neither a count nor an "
                             f"address or network") from None
    return tuple(networks)

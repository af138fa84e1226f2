"""Reads about pools. The one definition of a *claimable idle* slot lives here: idle,
and not backing off (``retry_after`` unset: its container died right after its build
and waits for its retry). The claim, the overviews, the scaling policy and the waiting
launches all count idle slots through it, so they agree on what a user can get now."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from pools.models import PoolContainer, Runtime, SlotStatus
from pools.states import BUILDING

S = SlotStatus


def claimable_q(prefix: str = "") -> Q:
    """The condition for a claimable idle slot; ``prefix`` (e.g. ``"slots__"``) for use
    across a relation, as in ``Count("slots", filter=claimable_q("slots__"))``. The
    claim's raw SQL (``pools.services._CLAIM_SQL``) spells the same condition."""
    return Q(**{f"{prefix}status": S.IDLE, f"{prefix}retry_after__isnull": True})


def coming_q(prefix: str = "") -> Q:
    """Claimable idle now, or being built for nobody yet (provisioning, recycling)."""
    return claimable_q(prefix) | Q(**{f"{prefix}status__in": BUILDING})


def slots_claimable(*, runtime: Runtime) -> QuerySet[PoolContainer]:
    return PoolContainer.objects.filter(claimable_q(), runtime=runtime)


def slots_coming_count(*, runtime: Runtime) -> int:
    """Slots free for the next launches without anyone releasing one."""
    return PoolContainer.objects.filter(coming_q(), runtime=runtime).count()

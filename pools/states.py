"""The slot state machine: every allowed move of a ``PoolContainer`` and why it happens.

``pools.services.slot_transition`` performs every move in this table as one
compare-and-set on the slot's status *and* generation; nothing else writes a slot's
status (the claim is the same compare-and-set written as one ``UPDATE … RETURNING``
that also picks the slot). A move *into* a busy state starts a new container build: it
bumps the generation, and the build task for that generation is queued. A move out of a
busy state is the build's own outcome and keeps the generation.

Invariants (checked by ``pools.invariants.invariants_check``):

- an ``idle`` or ``provisioning`` slot has no owner and an empty content store;
- an ``idle`` slot backing off (``retry_after`` set: its container died right after its
  build) is not claimable; it stays idle, unowned, until its retry rebuilds it;
- a slot that leaves an owner (any move into ``recycling``) has its store cleared before
  anyone else can claim it; the store is checked again just before the slot turns idle,
  and (a cheap stat) at every claim;
- at most one container per slot, carrying the slot's current generation once settled;
- an ``assigned`` slot's container serves its owner's current files
  (``pushed_version == content_version``; the reconcile pass re-pushes when not);
- one build per (slot, generation), one reconcile pass at a time (a database lease).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pools.errors import PaasError
from pools.models import PoolContainer, SlotStatus

S = SlotStatus
BUSY = frozenset({S.PROVISIONING, S.RECYCLING, S.RECOVERING})  # a build task owns the slot
HELD = frozenset({S.ASSIGNED, S.RECOVERING, S.FAILED})  # states in which a slot may have an owner
SETTLED = frozenset({S.IDLE, S.ASSIGNED})  # a container is up and checked by the pass
IN_USE = frozenset({S.ASSIGNED, S.RECOVERING})  # counted as "assigned" in the overviews
BUILDING = frozenset({S.PROVISIONING, S.RECYCLING})  # counted as "busy": no owner yet
# A *claimable* idle slot (idle, no back-off) is defined once: ``pools.selectors``.


class InvalidTransition(PaasError):
    """This slot cannot make that move (a programming error, never user input)."""

    code = "invalid_transition"
    status = 409


def _owned(slot: PoolContainer) -> bool:
    return slot.owner_id is not None


def _unowned(slot: PoolContainer) -> bool:
    return slot.owner_id is None


@dataclass(frozen=True)
class Move:
    why: str
    guard: Callable[[PoolContainer], bool] | None = None


TRANSITIONS: dict[tuple[str, str], Move] = {
    (S.IDLE, S.ASSIGNED): Move("claim: a user takes an idle slot (slot_claim)", _unowned),
    (S.IDLE, S.PROVISIONING): Move("recover or reinitialize an idle slot", _unowned),
    (S.IDLE, S.FAILED): Move("its container keeps failing right after each rebuild"),
    (S.ASSIGNED, S.RECOVERING): Move("recover or reinitialize; the owner keeps it", _owned),
    (S.ASSIGNED, S.RECYCLING): Move("release: the owner leaves, the store is cleared"),
    (S.ASSIGNED, S.FAILED): Move("its container keeps failing right after each rebuild"),
    (S.PROVISIONING, S.IDLE): Move("built, answering, store empty", _unowned),
    (S.PROVISIONING, S.PROVISIONING): Move("retry a build that failed or was lost"),
    (S.PROVISIONING, S.FAILED): Move("the build keeps failing"),
    (S.RECYCLING, S.IDLE): Move("rebuilt after a release, store empty", _unowned),
    (S.RECYCLING, S.RECYCLING): Move("retry a build that failed or was lost"),
    (S.RECYCLING, S.FAILED): Move("the build keeps failing"),
    (S.RECOVERING, S.ASSIGNED): Move("rebuilt for its owner; content is pushed", _owned),
    (S.RECOVERING, S.RECOVERING): Move("retry, or an operator's reinitialize", _owned),
    (S.RECOVERING, S.RECYCLING): Move("release while being recovered"),
    (S.RECOVERING, S.FAILED): Move("the build keeps failing"),
    (S.FAILED, S.PROVISIONING): Move("an operator reinitializes a slot nobody holds", _unowned),
    (S.FAILED, S.RECOVERING): Move("an operator reinitializes a held slot", _owned),
    (S.FAILED, S.RECYCLING): Move("release of a failed slot its owner still holds", _owned),
}


def transition_check(slot: PoolContainer, to: str) -> None:
    """Raise ``InvalidTransition`` unless the table allows ``slot`` to move to ``to``."""
    move = TRANSITIONS.get((slot.status, to))
    if move is None or (move.guard is not None and not move.guard(slot)):
        raise InvalidTransition(f"slot {slot.pk}: {slot.status} -> {to} is not allowed")


def starts_build(to: str) -> bool:
    """Moving into a busy state starts a new build under a new generation."""
    return to in BUSY

"""A lease row in the database: one holder at a time across processes and hosts.

The reconcile pass and every converge run under the ``pools`` lease, so two passes (the
schedule, the watcher's catch-up, ``pool reconcile``, a command) never count and create
at once. Each call takes the lease under its own random holder id, so even two callers
in one thread exclude each other. A holder that is killed blocks nobody past
``PAAS_PASS_LEASE_SECONDS``; a long holder renews as it goes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from pools.errors import PaasError
from pools.models import Lease

POOLS = "pools"


class LeaseBusy(PaasError):
    """Another reconcile pass or converge is running; try again shortly."""

    code = "busy"
    status = 409


def lease_acquire(*, name: str, holder: str, seconds: float | None = None) -> bool:
    """Take (or renew) the lease if it is free, expired, or already ours."""
    now = timezone.now()
    ttl = timedelta(seconds=seconds or settings.PAAS_PASS_LEASE_SECONDS)
    won = Lease.objects.filter(Q(expires_at__lte=now) | Q(holder=holder), name=name).update(
        holder=holder, expires_at=now + ttl)
    if won:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=now + ttl)
        return True
    except IntegrityError:  # it exists and someone else holds it
        return False


def lease_release(*, name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=timezone.now())


class Holder:
    """What a lease context yields: ``renew()`` pushes the expiry out again."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = uuid.uuid4().hex

    def renew(self) -> None:
        lease_acquire(name=self.name, holder=self.id)


@contextmanager
def lease_held(*, name: str = POOLS, wait: float = 0.0) -> Iterator[Holder]:
    """Hold the lease for the block; wait up to ``wait`` seconds for it, else
    ``LeaseBusy``."""
    holder = Holder(name)
    deadline = time.monotonic() + wait
    while not lease_acquire(name=name, holder=holder.id):
        if time.monotonic() >= deadline:
            raise LeaseBusy()
        time.sleep(0.2)
    try:
        yield holder
    finally:
        lease_release(name=name, holder=holder.id)

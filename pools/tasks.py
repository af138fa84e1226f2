"""django-q2 task entry points: take ids, call one service. Each is idempotent, so a
task handed out again after a killed worker does no double work."""

import logging

from pools import services
from pools.lease import LeaseBusy

log = logging.getLogger(__name__)


def slot_rebuild(slot_id: int, generation: int) -> bool:
    return services.slot_rebuild(slot_id=slot_id, generation=generation)


def slot_roll(slot_id: int, generation: int) -> bool:
    return services.slot_roll(slot_id=slot_id, generation=generation)


def slot_retry_due(slot_id: int, generation: int) -> bool:
    return services.slot_retry_due(slot_id=slot_id, generation=generation)


def container_remove(container_id: str) -> None:
    services.container_remove(container_id=container_id)


def pool_converge(runtime_name: str) -> dict:
    """A requested converge (a size change, an added container). When a pass or a
    command holds the lease too long, the next scheduled pass converges instead."""
    try:
        result = services.pool_converge_locked(runtime_name=runtime_name,
                                               lease_wait=services.TASK_LEASE_WAIT)
    except LeaseBusy:
        log.info("converge of %s left to the next pass: another one is running", runtime_name)
        return {"skipped": True}
    return {key: result[key] for key in ("added", "removed", "short")}


def reconcile() -> dict:
    from pools.monitor import reconcile_pass

    return reconcile_pass(trigger="schedule")


def prune() -> dict:
    from pools.housekeeping import history_prune

    return history_prune()


def routes_sync() -> dict:
    from pools.proxy import routes_reconcile

    return routes_reconcile()

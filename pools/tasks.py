"""django-q2 task entry points: take ids, call one service. Each is idempotent, so a
task handed out again after a killed worker does no double work."""

from pools import services


def slot_rebuild(slot_id: int, generation: int) -> bool:
    return services.slot_rebuild(slot_id=slot_id, generation=generation)


def container_remove(container_id: str) -> None:
    services.container_remove(container_id=container_id)


def reconcile() -> dict:
    from pools.monitor import reconcile_pass

    return reconcile_pass(trigger="schedule")

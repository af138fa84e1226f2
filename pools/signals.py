"""After ``migrate``: seed the built-in runtimes (first run only) and install the
periodic tasks (idempotent)."""

from typing import Any

from django.db.models.signals import post_migrate
from django.dispatch import receiver


@receiver(post_migrate)
def seed_after_migrate(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "name", "") != "pools":
        return
    from pools.monitor import schedules_install
    from pools.services import runtime_seed

    runtime_seed()
    schedules_install()

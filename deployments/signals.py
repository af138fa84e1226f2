"""A user who is deactivated or deleted gives back every container they hold, however
that happens (admin, shell, a command) — through the deployments service."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_migrate, pre_delete, pre_save
from django.dispatch import receiver

from deployments.models import EndedReason

User = get_user_model()


@receiver(pre_save, sender=User)
def release_when_deactivated(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.pk is None or instance.is_active:
        return
    was_active = User.objects.filter(pk=instance.pk, is_active=True).exists()
    if was_active:
        from deployments.services import deployments_release_for_user

        transaction.on_commit(lambda: deployments_release_for_user(
            user=instance, reason=EndedReason.ACCOUNT))


@receiver(post_migrate)
def install_cull_schedule(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "name", "") == "deployments":
        from deployments.lifetimes import cull_schedule_install

        cull_schedule_install()


@receiver(pre_delete, sender=User)
def release_before_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    # Before the row goes: afterwards the slots would be assigned to nobody.
    from deployments.services import deployments_release_for_user

    deployments_release_for_user(user=instance, reason=EndedReason.ACCOUNT)

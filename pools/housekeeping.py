"""Housekeeping: history has a retention period (``PAAS_HISTORY_DAYS``), and the lock
files and stores of deleted slots do not accumulate. Run by ``pool prune`` and a daily
schedule."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from pools import content
from pools.models import MonitorPass, PoolContainer, Recovery


def history_prune(*, days: int | None = None) -> dict[str, int]:
    """Delete monitor passes, recoveries and django-q2 task results older than
    the retention period, and the lock files of slots that no longer exist. Returns how
    many of each were removed."""
    from django_q.models import Task

    cutoff = timezone.now() - timedelta(days=settings.PAAS_HISTORY_DAYS if days is None else days)
    return {
        "monitor_passes": MonitorPass.objects.filter(started_at__lt=cutoff).delete()[0],
        "recoveries": Recovery.objects.filter(started_at__lt=cutoff).delete()[0],
        "tasks": Task.objects.filter(stopped__lt=cutoff).delete()[0],
        "lock_files": content.lock_files_prune(
            keep=set(PoolContainer.objects.values_list("pk", flat=True))),
    }

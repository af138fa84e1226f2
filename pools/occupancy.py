"""Occupancy history: one sample per runtime per reconcile pass, drawn in the admin
index as a small server-rendered SVG chart (no script, no CDN)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from pools.models import OccupancySample, PoolContainer, Runtime, SlotStatus

S = SlotStatus
KEEP = timedelta(days=2)
WIDTH, HEIGHT = 320, 64


def occupancy_record() -> None:
    """Sample every runtime's counts now, and forget samples older than ``KEEP``."""
    now = timezone.now()
    counts: dict[str, dict[str, int]] = {name: {} for name in
                                         Runtime.objects.values_list("name", flat=True)}
    for row in PoolContainer.objects.values("runtime__name", "status").annotate(n=Count("id")):
        counts[row["runtime__name"]][row["status"]] = row["n"]
    OccupancySample.objects.bulk_create([
        OccupancySample(at=now, runtime_name=name, idle=c.get(S.IDLE, 0),
                        assigned=c.get(S.ASSIGNED, 0) + c.get(S.RECOVERING, 0),
                        busy=c.get(S.PROVISIONING, 0) + c.get(S.RECYCLING, 0),
                        failed=c.get(S.FAILED, 0))
        for name, c in counts.items()])
    OccupancySample.objects.filter(at__lt=now - KEEP).delete()


@dataclass
class Chart:
    runtime: str
    assigned: str  # SVG polygon points: the assigned area
    total: str  # SVG polyline points: all slots
    peak: int
    samples: int
    now_assigned: int
    now_total: int


def occupancy_charts(*, hours: int = 6, now: datetime | None = None) -> list[Chart]:
    """One chart per runtime over the last ``hours``; x is time, y is slots."""
    now = now or timezone.now()
    start = now - timedelta(hours=hours)
    rows = list(OccupancySample.objects.filter(at__gte=start).order_by("at"))
    charts = []
    for runtime in sorted({row.runtime_name for row in rows}):
        mine = [row for row in rows if row.runtime_name == runtime]
        peak = max(1, *(row.total for row in mine))

        def point(at: datetime, value: int, peak: int = peak) -> str:
            x = (at - start).total_seconds() / (now - start).total_seconds() * WIDTH
            return f"{x:.1f},{HEIGHT - value / peak * (HEIGHT - 4):.1f}"

        line = [point(row.at, row.assigned) for row in mine]
        area = [point(mine[0].at, 0), *line, point(mine[-1].at, 0)]
        charts.append(Chart(runtime, " ".join(area),
                            " ".join(point(row.at, row.total) for row in mine), peak,
                            len(mine), mine[-1].assigned, mine[-1].total))
    return charts

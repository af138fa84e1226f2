"""The admin's occupancy chart: each reconcile pass samples every runtime, old samples
are forgotten, and the admin index draws one SVG per runtime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone

from deployments.services import deployment_create
from pools import monitor, occupancy
from pools.models import OccupancySample

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_pass_samples_every_runtime_and_forgets_old_samples(
        warm: Callable, alice: AbstractUser) -> None:
    warm("nginx", 2)
    deployment_create(user=alice, runtime_name="nginx")
    OccupancySample.objects.create(at=timezone.now() - timedelta(days=3), runtime_name="nginx",
                                   idle=0, assigned=0, busy=0, failed=0)
    monitor.reconcile_pass()
    samples = {s.runtime_name: s for s in OccupancySample.objects.all()}
    assert set(samples) == {"nginx", "apache", "python", "node"}
    assert (samples["nginx"].idle, samples["nginx"].assigned, samples["nginx"].total) == (1, 1, 2)


def test_chart_spans_the_window_and_scales_to_the_peak() -> None:
    now = timezone.now()
    for minutes, assigned in [(300, 1), (120, 4), (0, 2)]:
        OccupancySample.objects.create(at=now - timedelta(minutes=minutes), runtime_name="node",
                                       idle=4 - assigned, assigned=assigned, busy=0, failed=0)
    OccupancySample.objects.create(at=now - timedelta(hours=7), runtime_name="node", idle=0,
                                   assigned=9, busy=0, failed=0)  # outside the 6 hours
    [chart] = occupancy.occupancy_charts(hours=6, now=now)
    assert (chart.runtime, chart.samples, chart.peak, chart.now_assigned) == ("node", 3, 4, 2)
    xs = [float(p.split(",")[0]) for p in chart.total.split()]
    assert xs[0] == pytest.approx(occupancy.WIDTH / 6, abs=0.1) and xs[-1] == occupancy.WIDTH
    top = [float(p.split(",")[1]) for p in chart.assigned.split()][2]  # the peak sample
    assert top == pytest.approx(4.0)


def test_admin_index_draws_the_charts(operator: Client, warm: Callable) -> None:
    page = operator.get("/admin/").content.decode()
    assert "No samples yet" in page
    warm("nginx", 1)
    monitor.reconcile_pass()
    page = operator.get("/admin/").content.decode()
    assert 'aria-label="nginx occupancy"' in page and "<polyline points=" in page

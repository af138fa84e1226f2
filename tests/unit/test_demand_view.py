"""The operators' demand view, per runtime: claims per minute over the last minutes,
launches waiting, idle (claimable only), being built, the scaling policy, and when
each assigned deployment expires; in ``pool status`` (table and JSON) and on the admin
index."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from deployments.models import Deployment
from deployments.selectors import pools_demand
from deployments.services import deployment_create
from pools.models import PoolContainer, Runtime, SlotStatus

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus


def status(*args: str) -> str:
    out = io.StringIO()
    call_command("pool", "status", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def busy_nginx(warm: Callable, alice: AbstractUser, bob: AbstractUser) -> dict[str, Deployment]:
    """nginx: 3 slots, alice and bob hold one each; alice's expires in 5 minutes by
    idle timeout, bob's never (no lifetime for him: staff override); 30 launches in the
    last 10 minutes (28 of them older, released), one slot being built, one backing off."""
    from accounts.models import Quota

    warm("nginx", 4)
    Runtime.objects.filter(name="nginx").update(idle_timeout=600, max_total=40, step=3,
                                                idle_ttl=120)
    Quota.objects.create(user=bob, idle_timeout=0)  # 0: no idle timeout for bob
    mine = {"alice": deployment_create(user=alice, runtime_name="nginx"),
            "bob": deployment_create(user=bob, runtime_name="nginx")}
    Deployment.objects.filter(pk=mine["alice"].pk).update(
        last_activity_at=timezone.now() - timedelta(seconds=300))
    earlier = timezone.now() - timedelta(minutes=5)
    Deployment.objects.bulk_create([
        Deployment(user_id=alice.pk, runtime_name="nginx", status=Deployment.Status.RELEASED,
                   created_at=earlier, released_at=earlier) for _ in range(28)])
    Deployment.objects.create(user=alice, runtime_name="nginx", status="released",
                              created_at=timezone.now() - timedelta(minutes=30))  # too old
    idle = list(PoolContainer.objects.filter(status=S.IDLE).order_by("port"))
    PoolContainer.objects.filter(pk=idle[0].pk).update(status=S.PROVISIONING)
    PoolContainer.objects.filter(pk=idle[1].pk).update(
        retry_after=timezone.now() + timedelta(seconds=60))
    return mine


def nginx_row(rows: list[dict]) -> dict:
    return next(r for r in rows if r["runtime"] == "nginx")


def test_the_demand_view_counts_per_runtime(busy_nginx: dict[str, Deployment]) -> None:
    row = nginx_row(pools_demand(minutes=10))
    assert row["claims_per_minute"] == 3.0  # 30 launches in 10 minutes
    assert (row["idle"], row["busy"], row["assigned"], row["waiting"]) == (0, 1, 2, 0)
    assert row["policy"] == {"min_idle": 4, "max_total": 40, "idle_ttl": 120, "step": 3}
    alice, bob = row["deployments"]  # soonest first, "never" last
    assert (alice["user"], alice["reason"]) == ("alice", "idle_timeout")
    expected = timezone.now() + timedelta(seconds=300)
    assert abs((alice["expires_at"] - expected).total_seconds()) < 5
    assert (bob["user"], bob["expires_at"]) == ("bob", None)
    assert nginx_row(pools_demand(minutes=1))["claims_per_minute"] == 2.0  # the two live ones


def test_pool_status_shows_demand_policy_and_expiries(busy_nginx: dict[str, Deployment]) -> None:
    table = status()
    line = next(x for x in table.splitlines() if x.startswith("nginx"))
    assert "3.0" in line.split() and "min idle 4, max total 40, idle ttl 120s, step 3" in line
    port = busy_nginx["alice"].port
    assert any(f"nginx:{port} alice expires" in x and "in 4 min" in x and "idle_timeout" in x
               for x in table.splitlines())
    assert f"nginx:{busy_nginx['bob'].port} bob expires never" in table
    rows = json.loads(status("--json"))
    assert nginx_row(rows)["claims_per_minute"] == 3.0
    assert [d["user"] for d in nginx_row(rows)["deployments"]] == ["alice", "bob"]


def test_the_admin_index_shows_demand_policy_and_expiries(
        busy_nginx: dict[str, Deployment], charlie: AbstractUser) -> None:
    client = Client()
    client.force_login(charlie)  # type: ignore[arg-type]
    page = client.get("/admin/").content.decode()
    assert "claims/min" in page and "<td>3.0</td>" in page
    assert "Assigned deployments, soonest to expire first" in page
    assert page.index("<td>alice</td>") < page.index("<td>bob</td>")
    assert "never" in page

"""A runtime's scaling policy: validation against the port range and the host memory
budget (``Runtime.clean()``), the admin and ``pool set-policy``, and the per-user share
of a pool."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from deployments.models import Deployment
from pools import policy
from pools.models import Runtime
from tests.conftest import runtime_form

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def host_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[int], None]:
    """``host_memory(MiB)``: what /proc/meminfo says is available now."""

    def set_available(mib: int) -> None:
        meminfo = tmp_path / "meminfo"
        meminfo.write_text(f"MemTotal: 99999999 kB\nMemAvailable: {mib * 1024} kB\n")
        monkeypatch.setattr(policy, "MEMINFO", meminfo)

    set_available(16384)
    return set_available


def nginx() -> Runtime:
    return Runtime.objects.get(name="nginx")


def launch(user: AbstractUser, runtime: str = "nginx") -> tuple[int, dict]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    response = client.post("/api/deployments/", {"runtime": runtime}, format="json")
    return response.status_code, response.json()


# --- measured host memory ----------------------------------------------------------------
def test_host_memory_is_read_from_proc_meminfo() -> None:
    assert policy.host_memory_available_mb() > 0


def test_the_memory_budget_counts_what_fits_now_plus_what_the_pool_has(
        settings: SettingsWrapper, host_memory: Callable[[int], None], warm: Callable) -> None:
    settings.PAAS_MEMORY_RESERVE_MB = 512
    host_memory(512 + 10 * 64)  # room for ten more at 64 MiB each
    assert policy.memory_budget(runtime=nginx()) == 10
    warm("nginx", 3)  # these already use their memory: it is out of MemAvailable
    assert policy.memory_budget(runtime=nginx()) == 13
    host_memory(100)  # less than the reserve: nothing more fits
    assert policy.memory_budget(runtime=nginx()) == 3


# --- validation -------------------------------------------------------------------------------
def test_a_sensible_policy_is_accepted(host_memory: Callable[[int], None]) -> None:
    runtime = nginx()
    runtime.pool_size, runtime.max_total, runtime.step = 5, 40, 4
    runtime.full_clean()


def test_max_total_beyond_the_port_range_is_refused(host_memory: Callable[[int], None]) -> None:
    runtime = nginx()
    ports = runtime.port_max - runtime.port_min + 1
    runtime.max_total = ports + 1
    with pytest.raises(ValidationError) as caught:
        runtime.full_clean()
    message = caught.value.message_dict["max_total"][0]
    assert f"more than the {ports} ports" in message and "widen the range" in message


def test_max_total_beyond_the_host_memory_budget_is_refused(
        settings: SettingsWrapper, host_memory: Callable[[int], None]) -> None:
    settings.PAAS_MEMORY_RESERVE_MB = 512
    host_memory(512 + 5 * 64)
    runtime = nginx()
    runtime.max_total = 6
    with pytest.raises(ValidationError) as caught:
        runtime.full_clean()
    message = caught.value.message_dict["max_total"][0]
    assert "host memory budget is 5 containers" in message and "832 MiB available" in message


def test_min_idle_above_max_total_is_refused(host_memory: Callable[[int], None]) -> None:
    runtime = nginx()
    runtime.pool_size, runtime.max_total = 10, 5
    with pytest.raises(ValidationError) as caught:
        runtime.full_clean()
    assert "min idle 10 is more than the pool may hold (5" in \
        caught.value.message_dict["pool_size"][0]


@pytest.mark.parametrize("field, value, message", [
    ("step", 0, "at least 1"),
    ("max_share", 0.0, "more than 0"),
    ("max_share", 1.5, "at most 1"),
])
def test_nonsense_values_are_refused(host_memory: Callable[[int], None], field: str,
                                     value: object, message: str) -> None:
    runtime = nginx()
    setattr(runtime, field, value)
    with pytest.raises(ValidationError) as caught:
        runtime.full_clean()
    assert message in caught.value.message_dict[field][0]


# --- the admin and the command ----------------------------------------------------------------
def test_the_admin_refuses_a_conflicting_policy_with_the_reason(
        operator: Client, host_memory: Callable[[int], None]) -> None:
    runtime = nginx()
    url = f"/admin/pools/runtime/{runtime.pk}/change/"
    response = operator.post(url, runtime_form(runtime, pool_size=2, max_total=9999))
    assert response.status_code == 200  # the form again, with the error
    assert "ports of" in response.content.decode()
    assert nginx().max_total is None
    response = operator.post(url, runtime_form(runtime, pool_size=2, max_total=20, idle_ttl=300,
                                                   step=2))
    assert response.status_code == 302
    assert (nginx().max_total, nginx().idle_ttl, nginx().step) == (20, 300, 2)


def test_pool_set_policy_sets_only_what_it_is_given(host_memory: Callable[[int], None]) -> None:
    out = StringIO()
    call_command("pool", "set-policy", "nginx", "--min-idle", "3", "--max-total", "30",
                 "--idle-ttl", "120", "--step", "5", stdout=out)
    assert "nginx: min idle 3, max total 30, idle ttl 120s, step 5" in out.getvalue()
    call_command("pool", "set-policy", "nginx", "--step", "2", stdout=out)
    runtime = nginx()
    assert (runtime.min_idle, runtime.max_total, runtime.idle_ttl, runtime.step) == (3, 30, 120, 2)
    call_command("pool", "set-policy", "nginx", "--max-total", "auto", stdout=out)
    assert nginx().max_total is None


def test_pool_set_policy_refuses_a_conflict_and_changes_nothing(
        host_memory: Callable[[int], None]) -> None:
    before = nginx()
    with pytest.raises(CommandError, match="max total 100000 is more than the 50 ports"):
        call_command("pool", "set-policy", "nginx", "--min-idle", "4", "--max-total", "100000")
    after = nginx()
    assert (after.pool_size, after.max_total) == (before.pool_size, before.max_total)
    with pytest.raises(CommandError, match="give a number or 'auto'"):
        call_command("pool", "set-policy", "nginx", "--max-total", "lots")
    with pytest.raises(CommandError, match="unknown runtime 'cobol'"):
        call_command("pool", "set-policy", "cobol", "--step", "1")


# --- the per-user share ------------------------------------------------------------------------
def test_the_share_is_a_fraction_of_the_pools_maximum_size() -> None:
    runtime = Runtime(port_min=8000, port_max=8099, max_total=None, max_share=0.5)
    assert policy.share_limit(runtime=runtime) == 50
    runtime.max_total, runtime.max_share = 5, 0.5
    assert policy.share_limit(runtime=runtime) == 2
    runtime.max_share = 0.01
    assert policy.share_limit(runtime=runtime) == 1  # everyone may hold one


def test_no_user_holds_more_than_their_share_of_a_pool(
        settings: SettingsWrapper, alice: AbstractUser, bob: AbstractUser,
        warm: Callable) -> None:
    settings.PAAS_USER_QUOTA = 10
    Runtime.objects.filter(name="nginx").update(max_total=4, max_share=0.5)
    warm("nginx", 4)
    assert [launch(alice)[0] for _ in range(2)] == [201, 201]
    status, body = launch(alice)
    assert (status, body["code"]) == (429, "share_exceeded")
    assert "the most one user may hold (50% of the pool's 4)" in body["detail"]
    assert Deployment.objects.filter(user=alice).count() == 2
    assert launch(bob)[0] == 201  # the rest of the pool is there for others

"""Following a container's log: cursors, one Docker read per container however many
follow it, a bound on reads at once, and a bound on each user's polls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser, User
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from pools import logs
from pools.models import PoolContainer
from tests.fakes import FakeEngine

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)


class GrowingLog:
    """A container log that grows while followers read it; counts Docker reads."""

    def __init__(self, delay: float = 0.0) -> None:
        self.lines: list[str] = []
        self.reads = 0
        self.delay = delay

    def add(self, text: str) -> None:
        fraction = f"{len(self.lines) + 1}".rstrip("0") or "0"  # Docker trims zeros
        self.lines.append(f"2026-01-01T10:00:00.{fraction}Z {text}")

    def __call__(self, container_id: str, tail: int = 100, timestamps: bool = False) -> str:
        self.reads += 1
        time.sleep(self.delay)
        return "".join(line + "\n" for line in self.lines[-tail:])


@pytest.fixture
def growing(fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> GrowingLog:
    log = GrowingLog()
    monkeypatch.setattr(fake_engine, "logs", log)
    return log


@pytest.fixture
def launched(alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> str:
    """alice's nginx deployment; the URL of its logs."""
    warm("nginx", 2)
    deployment = api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    return f"/api/deployments/{deployment.json()['id']}/logs/"


def test_cursors_sort_although_docker_trims_trailing_zeros() -> None:
    entries = logs.parse("2026-01-01T10:00:00.1Z a\n2026-01-01T10:00:00.12Z b\n"
                         "2026-01-01T10:00:01Z c\nnot a log line\n")
    assert [text for _, text in entries] == ["a", "b", "c"]
    cursors = [cursor for cursor, _ in entries]
    assert cursors == sorted(cursors) and cursors[0] == "2026-01-01T10:00:00.100000000Z"


def test_follow_returns_only_new_lines_after_the_cursor(
        launched: str, alice: AbstractUser, growing: GrowingLog,
        api: Callable[..., APIClient], settings: Settings) -> None:
    settings.PAAS_LOG_CACHE_SECONDS = 0
    client = api(alice)
    growing.add("one")
    growing.add("two")
    first = client.get(launched).json()
    assert first["lines"] == ["one", "two"]
    growing.add("three")
    nxt = client.get(launched, {"since": first["cursor"]}).json()
    assert nxt["lines"] == ["three"]
    same = client.get(launched, {"since": nxt["cursor"]}).json()
    assert same == {"lines": [], "cursor": nxt["cursor"]}


def test_a_bad_cursor_is_400(launched: str, alice: AbstractUser,
                             api: Callable[..., APIClient]) -> None:
    response = api(alice).get(launched, {"since": "yesterday"})
    assert response.status_code == 400 and "since" in response.json()["fields"]


def test_many_followers_share_one_docker_read(
        launched: str, alice: AbstractUser, growing: GrowingLog, settings: Settings) -> None:
    settings.PAAS_LOG_CACHE_SECONDS = 5
    growing.delay = 0.2  # a slow read: every follower arrives while it runs
    growing.add("hello")
    slot = PoolContainer.objects.get(owner=alice)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(
        logs.log_follow(container_id=slot.container_id)[0])) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert growing.reads == 1 and results == [["hello"]] * 20


def test_log_reads_at_once_are_bounded(
        growing: GrowingLog, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_readers", threading.BoundedSemaphore(1))
    monkeypatch.setattr(logs, "READ_WAIT", 0.05)
    growing.delay = 0.5
    growing.add("x")
    slow = threading.Thread(target=lambda: logs.log_follow(container_id="one"))
    slow.start()
    time.sleep(0.1)
    with pytest.raises(logs.LogsBusy):  # another container, nothing cached: 503 logs_busy
        logs.log_follow(container_id="two")
    slow.join()
    assert growing.reads == 1


def test_each_user_polls_are_bounded(launched: str, alice: AbstractUser, growing: GrowingLog,
                                     api: Callable[..., APIClient],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"logs": "3/min"})
    client = api(alice)
    assert [client.get(launched).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get(launched)
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"


def test_page_renders_lines_and_the_cursor_to_follow(
        launched: str, alice: User, growing: GrowingLog) -> None:
    growing.add("booted")
    client = Client()
    client.force_login(alice)
    deployment_id = launched.split("/")[3]
    page = client.get(f"/deployments/{deployment_id}/").content.decode()
    assert f'data-follow="{launched}"' in page and "booted" in page
    assert 'data-cursor="2026-01-01T10:00:00.100000000Z"' in page


def test_opening_the_log_is_use_but_follow_polls_are_not(
        launched: str, alice: AbstractUser, growing: GrowingLog,
        api: Callable[..., APIClient]) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import Deployment

    growing.add("one")
    long_ago = timezone.now() - timedelta(hours=1)
    deployment = Deployment.objects.get(user=alice)
    Deployment.objects.filter(pk=deployment.pk).update(last_activity_at=long_ago)
    cursor = api(alice).get(launched).json()["cursor"]
    assert Deployment.objects.get(pk=deployment.pk).last_activity_at > long_ago
    Deployment.objects.filter(pk=deployment.pk).update(last_activity_at=long_ago)
    api(alice).get(launched, {"since": cursor})  # an open tab polling: not activity
    assert Deployment.objects.get(pk=deployment.pk).last_activity_at == long_ago

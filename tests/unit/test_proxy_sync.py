"""Route syncs that queue up behind a running one share the next (group commit), and
only a sync that began after the caller's change may stand in for the caller's own."""

from __future__ import annotations

import fcntl
import threading
import time
from typing import Any

import pytest
from django.conf import settings

from pools import proxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Caddy's admin API, recorded: every GET differs from what we want, so every sync
    that runs loads a config."""
    calls: list[str] = []

    def admin_request(method: str, path: str, body: Any = None, **kw: Any) -> Any:
        calls.append(method)
        return {} if method == "GET" else None

    monkeypatch.setattr(proxy, "admin_request", admin_request)
    return calls


def sync_behind_a_running_one(monkeypatch: pytest.MonkeyPatch,
                              finished_meanwhile: int) -> tuple[bool, list[bool]]:
    """Call ``routes_sync`` while another process holds the sync lock; that one (and
    any after it) finish ``finished_meanwhile`` syncs before letting go."""
    result: list[bool] = []
    asked = threading.Event()
    count = proxy._syncs_done

    def count_and_say() -> int:
        asked.set()
        return count()

    monkeypatch.setattr(proxy, "_syncs_done", count_and_say)
    with open(settings.DATA_DIR / "caddy-sync.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        caller = threading.Thread(target=lambda: result.append(proxy.routes_sync()))
        caller.start()
        assert asked.wait(timeout=30)  # the caller has read the count at its call
        time.sleep(0.05)
        proxy._sync_counted(count() + finished_meanwhile)
        fcntl.flock(held, fcntl.LOCK_UN)
        caller.join(timeout=30)
    return caller.is_alive(), result


def test_a_sync_that_began_after_the_call_stands_in_for_it(loads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    stuck, result = sync_behind_a_running_one(monkeypatch, finished_meanwhile=2)
    assert not stuck and result == [False]
    assert loads == []  # Caddy was not asked at all


def test_the_sync_running_at_the_call_does_not_stand_in_for_it(loads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # It may have read the rows before the caller's change: the caller syncs itself.
    stuck, result = sync_behind_a_running_one(monkeypatch, finished_meanwhile=1)
    assert not stuck and result == [True]
    assert loads == ["GET", "POST"]


def test_each_sync_on_its_own_loads_and_is_counted(loads: list[str]) -> None:
    before = proxy._syncs_done()
    assert proxy.routes_sync() is True
    assert proxy.routes_sync() is True
    assert loads == ["GET", "POST", "GET", "POST"]
    assert proxy._syncs_done() == before + 2

"""The cluster's parent keeps its watcher child running: started again when it dies, after
a pause that doubles while it keeps dying and starts short again once it has run a
while. (The real processes: tests/integration/test_cluster_watcher.py.)"""

from __future__ import annotations

from multiprocessing.process import BaseProcess
from typing import cast

import pytest

from pools import cluster
from pools.cluster import WatcherChild


class FakeProcess:
    exitcode: int | None = None
    pid = 4242

    def is_alive(self) -> bool:
        return self.exitcode is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(cluster.time, "monotonic", clock)
    return clock


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> WatcherChild:
    child = WatcherChild(say=lambda line: None)

    def start() -> None:
        child.process = cast(BaseProcess, FakeProcess())
        child.started_at = clock.now

    monkeypatch.setattr(child, "start", start)
    return child


def restart_after(child: WatcherChild, clock: Clock, *, ran: float = 0.0) -> float:
    """Let the running watcher die after ``ran`` seconds; how long until it runs again."""
    clock.now += ran
    dead = cast(FakeProcess, child.process)
    dead.exitcode = -9
    died_at = clock.now
    child.keep_running()
    while child.process is None or child.process is dead:
        clock.now += 0.5
        child.keep_running()
    return clock.now - died_at


def test_the_watcher_starts_at_once(child: WatcherChild) -> None:
    child.keep_running()
    assert child.process is not None and child.process.is_alive()


def test_a_running_watcher_is_left_alone(child: WatcherChild) -> None:
    child.keep_running()
    running = child.process
    child.keep_running()
    assert child.process is running


def test_a_watcher_that_keeps_dying_waits_longer_each_time(child: WatcherChild,
                                                           clock: Clock) -> None:
    child.keep_running()
    waits = [restart_after(child, clock) for _ in range(8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_a_watcher_that_ran_a_while_starts_again_soon(child: WatcherChild,
                                                      clock: Clock) -> None:
    child.keep_running()
    for _ in range(4):
        restart_after(child, clock)
    assert restart_after(child, clock, ran=cluster.STEADY_SECONDS) == 1.0


def test_a_dead_watchers_live_gauges_are_dropped(child: WatcherChild, clock: Clock,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    dropped: list[int] = []
    monkeypatch.setattr("pools.metrics.process_dead", dropped.append)
    child.keep_running()
    restart_after(child, clock)
    assert dropped == [FakeProcess.pid]

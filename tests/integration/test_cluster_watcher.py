"""``pool cluster`` as real processes: django-q2's cluster with the watcher forked as its
child. Stopping the parent stops them all; a parent gone any other way takes the
watcher with it. (The watcher's own work and its restart after a kill are tested on
the self-healing live stack, test_self_healing.py.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.live import LiveStack

pytestmark = pytest.mark.integration
INSTANCE = settings.PAAS_INSTANCE + "-cluster"


def group_members(pgid: int) -> set[int]:
    """The live (not zombie) processes of a process group."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found.add(int(entry.name))
    return found


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")
    except OSError:
        return False


@pytest.fixture
def cluster() -> Iterator[LiveStack]:
    """A migrated data dir and ``pool cluster`` running on it (no web, no pools)."""
    stack = LiveStack(instance=INSTANCE, port_base=settings.LIVE_PORT_BASE,
                      sizes="nginx=0,apache=0,python=0,node=0")
    stack.manage("migrate", "--noinput")
    stack.start_cluster("worker")
    pgid = stack.procs["worker"].pid
    try:
        wait_until("the cluster runs", lambda: re.search(
            r"Q Cluster .* running\.", stack.log("worker")) is not None, 30)
        yield stack
    finally:
        stack.stop_process("worker", signal.SIGKILL)
        for pid in group_members(pgid):  # whatever a failed test left
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def test_sigterm_to_the_parent_stops_the_cluster_and_the_watcher(cluster: LiveStack) -> None:
    proc = cluster.procs["worker"]
    members = group_members(proc.pid)
    assert cluster.watcher_pid() in members
    assert len(members) >= 6  # parent, watcher, sentinel, monitor, pusher, 2 workers

    os.kill(proc.pid, signal.SIGTERM)  # the parent only, as systemd's KillMode=mixed does
    assert proc.wait(timeout=30) == 0
    wait_until("no process of the group is left", lambda: not group_members(proc.pid), 10)
    log = cluster.log("worker")
    assert "watcher stopped" in log and "has stopped" in log
    assert "Traceback" not in log


def test_a_parent_gone_by_sigkill_takes_the_watcher_along(cluster: LiveStack) -> None:
    watcher = cluster.watcher_pid()
    assert watcher is not None
    os.kill(cluster.procs["worker"].pid, signal.SIGKILL)
    wait_until("the watcher is gone", lambda: not alive(watcher), 10)


def test_a_dead_sentinel_stops_the_watcher_and_fails_the_parent(cluster: LiveStack) -> None:
    """systemd then restarts the whole group (Restart=on-failure)."""
    proc = cluster.procs["worker"]
    watcher = cluster.watcher_pid()
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    [sentinel] = [int(pid) for pid in children if int(pid) != watcher]

    os.kill(sentinel, signal.SIGKILL)
    assert proc.wait(timeout=30) == 1
    assert watcher is not None and not alive(watcher)
    assert "sentinel died" in cluster.log("worker")

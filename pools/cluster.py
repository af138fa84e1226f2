"""The task cluster and the Docker events watcher as one process group:
``python manage.py pool cluster``, how the platform runs them.

The parent sets Django up once, loads what the tasks and the watcher need and freezes it
(``pools.preload``), forks the watcher, then starts django-q2's cluster, which forks its
own processes from the same parent. Every one of them shares the parent's pages instead
of loading a Django of its own (the watcher alone was about 40 MB).

The parent supervises the watcher: one that dies is started again, after 1 s, then
2, 4 … up to a minute while it keeps dying (events missed meanwhile are the reconcile
pass's, as always). SIGTERM or SIGINT stops the watcher, then the cluster. A watcher
crash never touches the cluster; the parent leaves when the cluster's sentinel dies,
with an error status so that systemd restarts the whole group, and the watcher gets
SIGTERM from the kernel whenever the parent is gone, even after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from django.db import connections

RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 60.0
STEADY_SECONDS = 60.0  # a watcher that ran this long starts again after the short delay
STOP_SECONDS = 10.0  # a watcher that ignores SIGTERM this long is killed
SUPERVISE_SECONDS = 0.5
WATCHER_NAME = "paas-watcher"  # its process name (ps, top; /proc/<pid>/comm)
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

Say = Callable[[str], None]


class WatcherChild:
    """``pool watch`` in a child forked from this process, kept running."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.process: BaseProcess | None = None
        self.started_at = 0.0
        self.delay = RESTART_DELAY
        self.start_after = 0.0

    def keep_running(self) -> None:
        """Start the watcher if it is not running and its back-off is over."""
        if self.process is not None and self.process.is_alive():
            return
        now = time.monotonic()
        if self.process is not None:
            self._note_exit(now)
        if now >= self.start_after:
            self.start()

    def _note_exit(self, now: float) -> None:
        assert self.process is not None and self.process.pid is not None
        code = self.process.exitcode
        _forget_metrics(self.process.pid)
        self.process = None
        if now - self.started_at >= STEADY_SECONDS:
            self.delay = RESTART_DELAY
        self.start_after = now + self.delay
        self.say(f"watcher exited (status {code}); starting it again in {self.delay:.0f} s")
        self.delay = min(self.delay * 2, RESTART_DELAY_MAX)

    def start(self) -> None:
        # The child opens its own database connection: one inherited would share its
        # socket with this process (the parent holds none; this makes sure).
        connections.close_all()
        process = multiprocessing.get_context("fork").Process(
            target=_watch, args=(os.getpid(), self.say), name=WATCHER_NAME, daemon=True)
        # Blocked across the fork, so that a stop signal never runs this process's
        # handler in the child before the child has put back the default ones.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        self.process = process
        self.started_at = time.monotonic()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()  # SIGTERM: the watcher ends its event stream and leaves
        self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        if self.process.pid is not None:
            _forget_metrics(self.process.pid)
        self.process = None


def _forget_metrics(pid: int) -> None:
    """A dead watcher's live-gauge metric files go, as a gunicorn worker's do (imported
    here: this module is imported by tools that set no Django up)."""
    from pools.metrics import process_dead

    process_dead(pid)


def _watch(parent_pid: int, say: Say) -> None:
    """The child: default signal handling, gone with its parent, then ``pool watch``."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _die_with_parent(parent_pid)
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(WATCHER_NAME)
    from pools import monitor

    monitor.watch(say=say)


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM when the parent dies, however it dies (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def cluster_run(*, say: Say) -> bool:
    """Run django-q2's cluster with the watcher as a supervised child until SIGTERM or
    SIGINT (True), or until the cluster's sentinel dies (False)."""
    from django_q.cluster import Cluster

    from pools.preload import cluster_preload

    cluster_preload()
    cluster = Cluster()  # installs its own signal handlers; ours below replace them
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)  # the loop below does the stopping, never a handler

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    watcher = WatcherChild(say)
    try:
        watcher.keep_running()
        cluster.start()  # returns once the sentinel runs
        while not stopping and cluster.sentinel.is_alive():
            watcher.keep_running()
            time.sleep(SUPERVISE_SECONDS)
    finally:
        watcher.stop()
        if cluster.sentinel is not None:
            cluster.stop()
    return bool(stopping)

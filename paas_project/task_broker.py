"""django-q2's ORM broker with a wake-up call: a task is picked up the moment it is
queued, not at the cluster's next poll.

The stock ORM broker sleeps ``poll`` seconds whenever the queue is empty, so every task
(a recycle after a release, a recovery the watcher queued) waited up to that long before
a worker saw it. Here the cluster's pusher waits on a Unix datagram socket of its own
(one per pusher, in ``<PAAS_DATA_DIR>/q-wake/``) for at most that long instead, and
``enqueue`` sends one byte to every socket there after the task row is written.

Nothing else changes: the task row is still the only record of the work, the worker
still runs it with every guard (the generation compare-and-set, one builder per slot and
generation), and a lost wake-up (a full socket buffer, a pusher on another host, a
path too long for a socket) costs no more than the poll it replaces. With
``PAAS_REDIS_URL`` the Redis broker is used instead; it blocks on the list (BLPOP) and
needs none of this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

log = logging.getLogger(__name__)

SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


def wake_dir() -> Path:
    return settings.DATA_DIR / "q-wake"


def wake_all() -> int:
    """Wake every waiting pusher on this host; returns how many were reached. A socket
    nobody listens on any more (a stopped cluster) is removed."""
    reached = 0
    try:
        paths = list(wake_dir().glob("*.sock"))
    except OSError:
        return 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for path in paths:
            try:
                sender.sendto(b"!", str(path))
                reached += 1
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    path.unlink()  # its pusher is gone
            except OSError:
                pass  # a full buffer: that pusher is already awake
    return reached


class WakeSocket:
    """The pusher's end: a datagram socket that ``wake_all`` writes to."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.path = wake_dir() / f"{os.getpid()}.sock"
        if len(os.fsencode(self.path)) > SOCKET_PATH_MAX:
            log.warning("task wake-ups off: %s is too long for a socket; polling", self.path)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # left by an earlier process with our pid
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(self.path))
            sock.setblocking(False)
            self.sock = sock
        except OSError as exc:
            log.warning("task wake-ups off (%s); polling", exc)

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or ``timeout`` passes; True when woken. Wake-ups that came
        while we were busy are drained, so they cost one extra look at the queue."""
        if self.sock is None:
            select.select([], [], [], timeout)
            return False
        readable, _, _ = select.select([self.sock], [], [], timeout)
        woken = bool(readable)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.sock.recv(16)
        return woken


class WakeableORM(ORM):
    """The ORM broker; ``enqueue`` wakes the pushers, ``dequeue`` sleeps until woken."""

    _waker: WakeSocket | None = None

    def enqueue(self, task: Any) -> Any:
        task_id = super().enqueue(task)
        wake_all()
        return task_id

    def dequeue(self) -> Any:
        if self._waker is None or self._waker.path.name != f"{os.getpid()}.sock":
            self._waker = WakeSocket()  # made in the pusher's own process
        tasks = self._take()
        if not tasks:
            self._waker.wait(Conf.POLL)
        return tasks

    def _take(self) -> list[tuple[Any, Any]]:
        """The stock ``dequeue`` without its sleep: lock up to ``Conf.BULK`` due tasks,
        each by a conditional update (another cluster may be faster)."""
        due = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())
        taken = []
        for task in due[0:Conf.BULK]:
            if self.get_connection().filter(id=task.id, lock=task.lock).update(
                    lock=self.timeout(task)):
                taken.append((task.pk, task.payload))
        return taken

"""gunicorn's ``gthread`` worker, leaving new connections to a worker with a thread free.

Every worker polls the one listening socket, and the stock worker accepts whatever it
can: when many clients connect at once (a class opening the dashboard, a burst of
launches), the worker that happens to run first takes most of the connections and keeps
them (keep-alive), while the other sits idle. One process runs Python on one core at a
time, so a burst on PostgreSQL used about 1.2 of the 2 cores: one worker at ~95 % of a
core, the other at ~25 % (CPU per worker read from ``/proc`` during the bench's burst).

Here a worker whose threads are all busy leaves new connections to the others for a
moment (``HOLD_BACK``): a connection waits in the kernel's backlog for a worker with a
thread free, as with gunicorn's ``sync`` workers. When every worker is busy, each still
takes one new connection per ``HOLD_BACK``, so clients that keep their connections busy
cannot starve a newcomer (its request queues for a thread, as with the stock worker).
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

# How long a busy worker leaves a new connection to the others. A claim takes a few
# milliseconds of a thread, so a worker with a thread free answers well within it.
HOLD_BACK = 0.02


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0  # requests handed to the thread pool and not finished yet
        self.held_since = 0.0  # when this worker last stopped accepting for being busy

    def busy(self) -> bool:
        return bool(self.in_flight >= self.cfg.threads)

    def set_accept_enabled(self, enabled: bool) -> None:
        # run() asks for accepting again at each turn of its loop while we hold back.
        if enabled and self.busy() and time.monotonic() - self.held_since < HOLD_BACK:
            enabled = False
        super().set_accept_enabled(enabled)

    def enqueue_req(self, conn: Any) -> None:
        self.in_flight += 1
        super().enqueue_req(conn)
        if self.busy() and self._accepting:
            self.held_since = time.monotonic()
            super().set_accept_enabled(False)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_flight -= 1
        super().finish_request(conn, fs)

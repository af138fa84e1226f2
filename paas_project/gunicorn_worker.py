"""gunicorn's ``gthread`` worker, accepting a connection only while it has a thread free.

Every worker polls the one listening socket, and the stock worker accepts whatever it
can: when many clients connect at once (a class opening the dashboard, a burst of
launches), the worker that happens to run first takes most of the connections and keeps
them (keep-alive), while the other sits idle. One process runs Python on one core at a
time, so a burst on PostgreSQL used about 1.2 of the 2 cores: one worker at ~95 % of a
core, the other at ~25 % (CPU per worker read from ``/proc`` during the bench's burst).

Here a worker whose threads are all busy stops polling the listening socket until one is
free again, as gunicorn's ``sync`` workers do by construction: a connection waits in
the kernel's backlog for a worker that can serve it at once. Connections already
accepted are served as before (their requests queue for the worker's threads).
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0  # requests handed to the thread pool and not finished yet

    def set_accept_enabled(self, enabled: bool) -> None:
        # Called by run() whenever the stock rule (fewer connections than allowed)
        # disagrees with the current state, i.e. each loop while we hold back.
        super().set_accept_enabled(enabled and self.in_flight < self.cfg.threads)

    def enqueue_req(self, conn: Any) -> None:
        self.in_flight += 1
        super().enqueue_req(conn)
        if self.in_flight >= self.cfg.threads:
            super().set_accept_enabled(False)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_flight -= 1  # run() turns accepting back on at its next loop
        super().finish_request(conn, fs)

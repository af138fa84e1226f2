"""gunicorn settings (``--config python:paas_project.gunicorn_conf``): the worker model
and count, read from the environment, and a hook. Flags on the command line still win.

Threads, because a request mostly waits (on the database, on a lock): ``gthread``
workers (``paas_project.gunicorn_worker``) with 8 threads each. Processes, because
Python runs one thread at a time per process: one per core, so on the 2-core reference
machine 2 (``PAAS_WEB_WORKERS``). More processes than cores do not claim faster (on SQLite launches write one at a time; on
PostgreSQL the server needs the same cores) and each costs its own memory. See README
"Web workers" for the measurements.
"""

import os
from typing import Any

# The master loads the app and the workers are forked from it, sharing its pages
# (``when_ready`` below loads the rest). A code change takes a restart (as ``systemctl
# restart`` does), not a HUP: the master's copy is the one the workers get.
preload_app = True


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: use a whole number of at least 1")
    return int(value)


# gthread, a busy worker leaving new connections to the others for a moment (see the
# module): a burst of new connections is shared instead of the first worker awake taking most.
worker_class = "paas_project.gunicorn_worker.BalancedThreadWorker"
workers = _env_int("PAAS_WEB_WORKERS", os.cpu_count() or 2)
threads = _env_int("PAAS_WEB_THREADS", 8)
# Idle keep-alive connections wait in the poller, not in a thread. 2 s (gunicorn's
# default) is shorter than a client's pause between requests under load, and a request
# sent just as the server closes its connection fails (a reset, no answer): a burst of
# claims over kept-alive connections saw that.
keepalive = _env_int("PAAS_WEB_KEEPALIVE", 15)


def when_ready(server: Any) -> None:
    """The master, the app loaded, no worker forked yet: load and freeze what every
    worker would otherwise load on its own first requests, so they share it."""
    if server.cfg.preload_app:
        from pools.preload import web_preload

        web_preload()


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: drop its live-gauge metric files (its counters stay)."""
    from pools.metrics import process_dead

    process_dead(worker.pid)

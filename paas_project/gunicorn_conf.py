"""gunicorn hooks (``--config python:paas_project.gunicorn_conf``): the command line
keeps its flags; this only adds what flags cannot say."""

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: drop its live-gauge metric files (its counters stay)."""
    from pools.metrics import process_dead

    process_dead(worker.pid)

"""Memory of the django-q2 cluster: its processes (sentinel, monitor, pusher, workers)
are forked from the ``qcluster`` command's process, and share that process's pages until
they write to them. Two things keep them shared:

- everything a task needs is imported once, before the fork, instead of by each worker
  on its first task (the Docker SDK, requests, the services);
- ``gc.freeze()`` moves every object that exists by then out of the collector's reach:
  a collection writes to the header of each object it visits, which copies the page it
  sits on into every process that collects (Python's documented advice for pre-forking
  servers).
"""

from __future__ import annotations

import gc
import importlib

PRELOAD = ("pools.tasks", "pools.monitor", "pools.proxy", "pools.engine.local",
           "django_q.cluster", "django_q.brokers.orm")


def cluster_preload() -> None:
    from pools.engine.local import sdk_import

    for module in PRELOAD:
        importlib.import_module(module)
    sdk_import()
    gc.collect()
    gc.freeze()

"""Memory of the gunicorn workers: they are forked from the master, which loaded the app
(``preload_app``), and share its pages until they write to them. Django loads much of a
request's code lazily (the URLconf, and through it every view, serializer and the admin;
the reverse-lookup tables), so without this each worker would load its own copy on its
first requests. ``gc.freeze()`` then keeps the collector from writing to the header of
every shared object (which copies its page into each worker that collects), as
``pools.cluster_memory`` does for the task cluster.
"""

from __future__ import annotations

import gc

from django.db import connections
from django.urls import get_resolver


def web_preload() -> None:
    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 (imports the URLconf and every view)
    resolver.reverse_dict  # noqa: B018 (builds the reverse-lookup tables)
    # Nothing the master opened may be shared by the workers it forks (Django opens a
    # connection lazily, so there is usually none).
    connections.close_all()
    gc.collect()
    gc.freeze()

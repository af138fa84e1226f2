"""Memory of the forked processes: the gunicorn workers are forked from the master
(``preload_app``) and the django-q2 cluster's processes (sentinel, monitor, pusher,
workers) from the ``qcluster`` command's process. A child shares its parent's pages until
it writes to them. Two things keep them shared:

- everything a request or a task needs is imported once, before the fork, instead of by
  each child on first use: the Docker SDK and the services; for the web, the URLconf
  (and through it every view, serializer and the admin), its reverse-lookup tables, and
  what authentication loads lazily (JWT);
- ``gc.freeze()`` moves every object that exists by then out of the collector's reach:
  a collection writes to the header of each object it visits, which copies the page it
  sits on into every process that collects (Python's documented advice for pre-forking
  servers).
"""

from __future__ import annotations

import gc
import importlib

CLUSTER_MODULES = ("pools.tasks", "pools.monitor", "pools.proxy", "pools.engine.local",
                   "django_q.cluster", "django_q.brokers.orm")
# What the first requests load otherwise (found by comparing sys.modules before and
# after a sign-in, a listing and a claim).
WEB_MODULES = ("pools.engine.local", "paas_project.task_broker", "django_q.brokers.orm",
               "rest_framework_simplejwt.backends", "rest_framework_simplejwt.serializers",
               "rest_framework_simplejwt.state", "jwt", "django.contrib.messages.storage.fallback",
               "django.contrib.sessions.serializers")


def cluster_preload() -> None:
    _preload(CLUSTER_MODULES)


def web_preload() -> None:
    from django.db import connections
    from django.urls import get_resolver

    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 (imports the URLconf and every view)
    resolver.reverse_dict  # noqa: B018 (builds the reverse-lookup tables)
    # Nothing the master opened may be shared by the workers it forks (Django opens a
    # connection lazily, so there is usually none).
    connections.close_all()
    _preload(WEB_MODULES)


def _preload(modules: tuple[str, ...]) -> None:
    from pools.engine.local import sdk_import

    for module in modules:
        importlib.import_module(module)
    sdk_import()
    gc.collect()
    gc.freeze()

"""The Docker engine boundary: the only package that imports ``docker``.

One module per backend: ``local`` (one Docker daemon, a container per slot) and ``swarm``
(a Docker Swarm, a one-replica service per slot). ``PAAS_ENGINE=docker|swarm`` chooses;
everything above this package speaks ``ContainerSpec``/``ContainerInfo`` and the
``Engine`` interface and never knows which backend runs. The in-memory fake for unit
tests lives in ``tests/fakes.py``.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from pools.engine.base import (
    LABEL_GENERATION,
    LABEL_INSTANCE,
    LABEL_PORT,
    LABEL_RUNTIME,
    LABEL_SLOT,
    ContainerInfo,
    ContainerSpec,
    Engine,
    EngineEvent,
)
from pools.engine.local import DockerEngine

__all__ = [
    "LABEL_GENERATION", "LABEL_INSTANCE", "LABEL_PORT", "LABEL_RUNTIME", "LABEL_SLOT",
    "ContainerInfo", "ContainerSpec", "DockerEngine", "Engine", "EngineEvent",
    "get_engine", "set_engine",
]

_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine chosen by ``PAAS_ENGINE`` (tests may replace it)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _make_engine(settings.PAAS_ENGINE)
        return _engine


def _make_engine(kind: str) -> Engine:
    if kind == "docker":
        return DockerEngine()
    if kind == "swarm":
        from pools.engine.swarm import SwarmEngine

        return SwarmEngine(manager_url=settings.PAAS_SWARM_MANAGER,
                           node_urls=settings.PAAS_SWARM_NODES,
                           tls_dir=settings.PAAS_SWARM_TLS_DIR,
                           builder_url=settings.PAAS_SWARM_BUILDER)
    raise ImproperlyConfigured(f"PAAS_ENGINE must be 'docker' or 'swarm', not {kind!r}")


def set_engine(engine: Engine | None) -> None:
    global _engine
    _engine = engine

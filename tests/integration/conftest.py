"""Integration tests drive the real Docker engine under this run's own PAAS_INSTANCE
label, and remove every container they created (selected by that label)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings

from pools import services
from pools.engine import DockerEngine, set_engine
from pools.models import PoolContainer, Runtime

pytestmark = pytest.mark.integration


def remove_instance_containers(engine: DockerEngine, instance: str) -> None:
    for info in engine.list_managed(instance):
        engine.remove(info.id)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    from pools.imagebuild import build_images

    engine = DockerEngine()
    engine.ping()
    build_images(engine, progress=lambda line: None, prune=False)
    yield engine
    remove_instance_containers(engine, settings.PAAS_INSTANCE)
    engine.remove_network(services.network_name())


@pytest.fixture(autouse=True)
def real_engine(docker_engine: DockerEngine) -> Iterator[DockerEngine]:
    set_engine(docker_engine)
    services._networks_ready.clear()
    yield docker_engine
    remove_instance_containers(docker_engine, settings.PAAS_INSTANCE)
    set_engine(None)


@pytest.fixture
def warm_pools(transactional_db: None) -> Callable[..., dict[str, list[PoolContainer]]]:
    """``warm_pools(nginx=2, python=1)``: those pools initialised on the real engine
    (the others set to size 0); returns runtime → its slots."""

    def warm(**sizes: int) -> dict[str, list[PoolContainer]]:
        for runtime in Runtime.objects.all():
            Runtime.objects.filter(pk=runtime.pk).update(pool_size=sizes.get(runtime.name, 0))
        services.pool_init(wait=True)
        return {
            name: list(PoolContainer.objects.filter(runtime__name=name).order_by("port"))
            for name in sizes
        }

    return warm


def http_get(port: int | None, path: str = "/", *, timeout: float = 15.0,
             expect: str | None = None, host: str = "127.0.0.1") -> tuple[int, str]:
    """GET http://host:port/path, retrying until it answers (and, with ``expect``,
    until the body contains it) or ``timeout`` passes. Returns (status, body)."""
    assert port is not None, "no port: the deployment is still pending"
    deadline = time.monotonic() + timeout
    last: tuple[int, str] = (0, "")
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as resp:
                last = (resp.status, resp.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            last = (exc.code, exc.read().decode("utf-8", "replace"))
        except OSError as exc:
            last = (0, str(exc))
        if last[0] and (expect is None or expect in last[1]):
            return last
        if time.monotonic() > deadline:
            return last
        time.sleep(0.2)

"""Unit tests run on the in-memory FakeEngine, and every port probe answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pools import health, logs, services
from pools.engine import set_engine
from pools.models import PoolContainer, Runtime
from tests.fakes import FakeEngine


@pytest.fixture(autouse=True)
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEngine]:
    engine = FakeEngine()
    set_engine(engine)
    services._networks_ready.clear()
    logs.forget_all()  # fake container ids repeat from test to test
    monkeypatch.setattr(health, "http_answers", lambda port, **kw: True)
    monkeypatch.setattr(health, "port_is_free", lambda port: True)
    monkeypatch.setattr(services, "READY_TIMEOUT", 0.2)
    monkeypatch.setattr(services, "runtime_image", lambda runtime: f"paas/{runtime.name}:test")
    yield engine
    set_engine(None)


@pytest.fixture
def warm(transactional_db: None) -> Callable[..., list[PoolContainer]]:
    """``warm("nginx", 3)``: that many idle slots, built through the real services."""

    def make(runtime_name: str = "nginx", count: int = 2) -> list[PoolContainer]:
        services.pool_add(runtime_name=runtime_name, count=count, wait=True)
        runtime = Runtime.objects.get(name=runtime_name)
        return list(runtime.slots.order_by("port"))

    return make

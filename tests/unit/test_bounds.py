"""The container's writable space, as the platform asks Docker for it (fake engine)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from pytest_django.fixtures import Settings

from pools.runtimes import DEFAULTS, RUN_DIR_MB, writable_mounts
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)


def sizes(mounts: dict[str, str]) -> dict[str, int]:
    return {path: int(re.search(r"size=(\d+)m", options)[1])  # type: ignore[index]
            for path, options in mounts.items()}


@pytest.mark.parametrize("runtime", DEFAULTS, ids=lambda r: r.name)
def test_writable_places_share_the_budget_and_the_content_root_is_uid_1000s(runtime) -> None:
    mounts = writable_mounts(runtime_name=runtime.name, content_root=runtime.content_root,
                             size_mb=256)
    assert {"/tmp", "/run", runtime.content_root} <= set(mounts)
    assert sum(sizes(mounts).values()) <= 256 + RUN_DIR_MB
    assert "uid=1000,gid=1000" in mounts[runtime.content_root]
    assert all("nosuid" in options and "nodev" in options for options in mounts.values())


def test_slot_container_has_a_read_only_root_and_memory_for_its_files(
        settings: Settings, fake_engine: FakeEngine, warm: Callable) -> None:
    settings.PAAS_CONTAINER_DISK_MB = 100
    slot = warm("python", 1)[0]
    spec = fake_engine.specs[slot.container_id]
    assert spec.read_only
    assert set(spec.tmpfs) == {"/run", "/tmp", "/app", "/opt/venv", "/home/paas"}
    assert sizes(spec.tmpfs)["/app"] == 40
    assert spec.mem_limit_mb == slot.runtime.mem_limit_mb + 100 + RUN_DIR_MB
    assert spec.environment["PAAS_CONTENT_ROOT"] == "/app"

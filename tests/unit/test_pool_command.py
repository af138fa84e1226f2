"""`manage.py pool …` on the FakeEngine: output, parity with the admin, one-line errors."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from pools.models import PoolContainer, SlotStatus
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pool", *args, stdout=out)
    return out.getvalue()


def test_init_then_status_table_and_json() -> None:
    out = run("init")
    assert "created nginx=2, apache=1, python=1, node=1" in out
    table = run("status")
    assert table.splitlines()[0].split()[:5] == ["runtime", "idle", "assigned", "failed", "busy"]
    rows = {r["runtime"]: r for r in json.loads(run("status", "--json"))}
    assert rows["nginx"]["idle"] == 2 and rows["node"]["total"] == 1


def test_add_set_size_reinit(fake_engine: FakeEngine) -> None:
    assert "added 3 nginx container(s)" in run("add", "nginx", "3")
    assert "removed 2 idle" in run("set-size", "nginx", "1")
    assert PoolContainer.objects.filter(runtime__name="nginx").count() == 1
    before = PoolContainer.objects.get(runtime__name="nginx").generation
    assert "reinitializing 1 slot(s)" in run("reinit", "nginx")
    assert PoolContainer.objects.get(runtime__name="nginx").generation == before + 1


def test_release_by_slot_and_by_user(alice) -> None:
    from deployments.services import deployment_create

    run("init")
    first = deployment_create(user=alice, runtime_name="nginx")
    deployment_create(user=alice, runtime_name="nginx")
    assert f"released slot {first.slot_id}" in run("release", "--slot", str(first.slot_id))
    assert "is not assigned" in run("release", "--slot", str(first.slot_id))
    assert "released 1 container(s) of alice" in run("release", "--user", "alice")
    assert not PoolContainer.objects.filter(owner=alice).exists()
    assert PoolContainer.objects.filter(status=SlotStatus.IDLE, runtime__name="nginx").count() == 2


@pytest.mark.parametrize("args, message", [
    (("add", "cobol", "1"), "unknown runtime 'cobol'"),
    (("set-size", "nginx", "-1"), "size must be 0 or more"),
    (("release", "--user", "nobody"), "no user 'nobody'"),
    (("release", "--slot", "424242"), "no slot 424242"),
])
def test_errors_are_one_clear_line(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_engine_unreachable_says_how_to_start_it(fake_engine: FakeEngine) -> None:
    fake_engine.available = False
    with pytest.raises(CommandError, match="not reachable"):
        run("init")


def test_build_images_sends_what_it_built_to_the_engines_nodes(fake_engine: FakeEngine,
                                                               monkeypatch) -> None:
    """On a swarm the images run on the pool nodes, not where they were built: the
    command hands every tag to the engine's ``image_send``."""
    from pools import imagebuild

    fake_engine.images |= {imagebuild.BASE_TAG, imagebuild.image_tag("nginx")}
    sent: list[str] = []

    def send(tag: str, progress) -> list[str]:
        progress(f"{tag}: sent to node 10.9.0.12")
        sent.append(tag)
        return ["10.9.0.12"]

    monkeypatch.setattr(fake_engine, "image_send", send)
    out = run("build-images", "nginx", "python")
    assert sent == [imagebuild.image_tag("nginx"), imagebuild.image_tag("python")]
    assert f"{imagebuild.image_tag('python')}: sent to node 10.9.0.12" in out

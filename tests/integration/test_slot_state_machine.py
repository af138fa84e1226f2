"""The slot state machine on the real engine: no user ever sees another's files (a
failed recycle, a planted file), two passes at once do not overfill, and the invariants
hold afterwards (containers listed by label from the real daemon)."""

from __future__ import annotations

import io
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from deployments import services as deployments
from pools import content, monitor, services
from pools.engine import ContainerInfo, ContainerSpec, DockerEngine
from pools.errors import EngineError
from pools.invariants import invariants_check
from pools.models import PoolContainer, Runtime, SlotStatus
from tests.integration.conftest import http_get

pytestmark = [pytest.mark.integration]
S = SlotStatus


def test_failed_recycle_then_reinitialize_serves_the_next_user_only_their_files(
        warm_pools: Callable, real_engine: DockerEngine, alice: Any, bob: Any) -> None:
    warm_pools(nginx=1)
    first = deployments.deployment_create(user=alice, runtime_name="nginx")
    deployments.deployment_upload(deployment=first,
                                  uploads=[("secret.html", io.BytesIO(b"alice's secret"))])
    assert http_get(first.port, "/secret.html", expect="secret")[0] == 200

    def refuse(spec: ContainerSpec) -> ContainerInfo:
        raise EngineError("daemon refused the create")

    def refuse_replace(old_id: str, spec: ContainerSpec) -> ContainerInfo:
        real_engine.stop(old_id)  # the kill goes through; the create does not
        return refuse(spec)

    with pytest.MonkeyPatch.context() as broken:
        broken.setattr(real_engine, "create", refuse)
        broken.setattr(real_engine, "replace", refuse_replace)
        deployments.deployment_release(deployment=first)
        for _ in range(services.MAX_FAILURES):
            services.slot_retry(slot=PoolContainer.objects.get(pk=first.slot_id))
    slot = PoolContainer.objects.get(pk=first.slot_id)
    assert slot.status == S.FAILED and slot.owner_id is None and slot.last_error
    assert services.slot_reinitialize(slot=slot)
    second = deployments.deployment_create(user=bob, runtime_name="nginx")
    assert second.slot_id == slot.pk
    deployments.deployment_upload(deployment=second, uploads=[("bob.html", io.BytesIO(b"bob"))])
    assert http_get(second.port, "/bob.html", expect="bob")[1] == "bob"
    assert http_get(second.port, "/secret.html")[0] == 404
    assert invariants_check() == []


def test_a_file_planted_in_an_idle_store_never_reaches_the_claimer(
        warm_pools: Callable, bob: Any) -> None:
    slot = warm_pools(nginx=1)["nginx"][0]
    store = content.content_dir(slot.pk)
    store.mkdir(parents=True, exist_ok=True)
    (store / "planted.html").write_bytes(b"from a test run")
    deployment = deployments.deployment_create(user=bob, runtime_name="nginx")
    deployments.deployment_upload(deployment=deployment,
                                  uploads=[("index.html", io.BytesIO(b"bob's page"))])
    assert http_get(deployment.port, expect="bob's page")[1] == "bob's page"
    assert http_get(deployment.port, "/planted.html")[0] == 404
    assert deployments.deployment_files(deployment=deployment) == [
        {"path": "index.html", "size": 10}]


def test_passes_at_once_converge_to_the_size_and_the_invariants_hold(
        warm_pools: Callable) -> None:
    warm_pools(nginx=1)
    Runtime.objects.filter(name="nginx").update(pool_size=3)
    results: list[dict[str, Any]] = []

    def one_pass() -> None:
        try:
            results.append(monitor.reconcile_pass(trigger="test"))
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 3 and all(r["ok"] for r in results)
    assert PoolContainer.objects.filter(runtime__name="nginx").count() == 3
    Runtime.objects.filter(name="nginx").update(pool_size=1)
    assert monitor.reconcile_pass()["trimmed"] == {"nginx": 2}
    assert PoolContainer.objects.filter(runtime__name="nginx").count() == 1
    assert invariants_check() == []


def test_a_recovered_slot_whose_push_failed_is_repushed_by_the_pass(
        warm_pools: Callable, real_engine: DockerEngine, alice: Any) -> None:
    warm_pools(nginx=1)
    deployment = deployments.deployment_create(user=alice, runtime_name="nginx")
    deployments.deployment_upload(deployment=deployment,
                                  uploads=[("index.html", io.BytesIO(b"alice's page"))])
    slot = PoolContainer.objects.get(pk=deployment.slot_id)
    PoolContainer.objects.filter(pk=slot.pk).update(
        built_at=slot.built_at - timedelta(minutes=10))  # not a crash loop
    real_engine.remove(slot.container_id)  # like `docker rm -f`
    real_put = real_engine.put_archive
    failures = [EngineError("put_archive refused")]

    def flaky_put(container_id: str, path: str, data: bytes, replace: bool = False) -> None:
        if failures:
            raise failures.pop()
        real_put(container_id, path, data, replace=replace)

    with pytest.MonkeyPatch.context() as flaky:
        flaky.setattr(real_engine, "put_archive", flaky_put)
        assert services.slot_recover(slot=slot, reason="container missing")
    recovered = PoolContainer.objects.get(pk=slot.pk)
    assert recovered.status == S.ASSIGNED and recovered.pushed_version < recovered.content_version
    assert "alice's page" not in http_get(recovered.port)[1]  # the placeholder, for now
    assert monitor.reconcile_pass()["repushed"] == [slot.pk]
    assert http_get(recovered.port, expect="alice's page")[1] == "alice's page"
    assert invariants_check() == []


def test_a_recycle_whose_task_dies_before_the_removal_leaves_nothing_after_the_pass(
        warm_pools: Callable, real_engine: DockerEngine, alice: Any, bob: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The overlapped recycle only stops the old container before the new one starts,
    and removes it after the slot is idle. A task killed in between leaves it stopped;
    the pass removes it, with its writable layer, and the next user gets an empty
    container."""
    warm_pools(nginx=1)
    first = deployments.deployment_create(user=alice, runtime_name="nginx")
    deployments.deployment_upload(deployment=first,
                                  uploads=[("secret.html", io.BytesIO(b"alice's secret"))])
    assert http_get(first.port, "/secret.html", expect="secret")[0] == 200
    old = PoolContainer.objects.get(pk=first.slot_id).container_id
    layer = subprocess.run(["docker", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", old],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(layer).is_dir()

    class WorkerKilled(BaseException):
        """The task's process ends here: nothing after this point runs."""

    def killed(slot: PoolContainer) -> None:
        raise WorkerKilled

    with pytest.MonkeyPatch.context() as dying:
        dying.setattr(services, "_stale_remove_safely", killed)
        with pytest.raises(WorkerKilled):
            deployments.deployment_release(deployment=first)
    slot = PoolContainer.objects.get(pk=first.slot_id)
    left = real_engine.inspect(old)
    assert slot.status == S.IDLE and left is not None and not left.running

    assert monitor.reconcile_pass()["orphans_removed"] == 1
    assert real_engine.inspect(old) is None and not Path(layer).exists()
    assert [c.id for c in real_engine.list_managed(settings.PAAS_INSTANCE,
                                                   slot=str(slot.pk))] == [slot.container_id]
    second = deployments.deployment_create(user=bob, runtime_name="nginx")
    assert second.slot_id == slot.pk
    assert http_get(second.port, "/secret.html")[0] == 404
    assert invariants_check() == []

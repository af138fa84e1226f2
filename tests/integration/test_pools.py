"""Pools on the real Docker engine: warm containers answer, claims, release, reinit,
hardening, and isolation between two PAAS_INSTANCE values on one daemon."""

from __future__ import annotations

import io
import json
import socket
import subprocess
from collections.abc import Callable

import pytest
from django.conf import settings

from pools import content, services
from pools.engine import DockerEngine
from pools.models import PoolContainer, Runtime, SlotStatus
from tests.integration.conftest import http_get, remove_instance_containers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
S = SlotStatus


def docker_inspect(container_id: str) -> dict:
    out = subprocess.run(["docker", "inspect", container_id], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]


def test_every_runtime_placeholder_answers_on_its_host_port(warm_pools: Callable) -> None:
    pools = warm_pools(nginx=1, apache=1, python=1, node=1)
    for name, slots in pools.items():
        slot = slots[0]
        assert slot.status == S.IDLE, (name, slot.last_error)
        status, body = http_get(slot.port)
        assert status == 200, (name, body)
        assert "ready" in body.lower(), (name, body[:200])


def test_containers_are_labelled_hardened_and_on_our_network(
        warm_pools: Callable, real_engine: DockerEngine) -> None:
    slot = warm_pools(nginx=1)["nginx"][0]
    attrs = docker_inspect(slot.container_id)
    labels = attrs["Config"]["Labels"]
    assert labels["paas.instance"] == settings.PAAS_INSTANCE
    assert labels["paas.slot"] == str(slot.pk) and labels["paas.port"] == str(slot.port)
    assert labels["paas.generation"] == str(slot.generation)
    assert attrs["Name"] == f"/{slot.container_name}"
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and "NET_BIND_SERVICE" in host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and host["NanoCpus"] > 0
    assert host["LogConfig"]["Config"]["max-size"] == "1m"
    assert not any("docker.sock" in bind for bind in host.get("Binds") or [])
    network = services.network_name()
    assert network in attrs["NetworkSettings"]["Networks"]
    net = json.loads(subprocess.run(["docker", "network", "inspect", network], check=True,
                                    capture_output=True, text=True).stdout)[0]
    assert net["Options"]["com.docker.network.bridge.enable_icc"] == "false"


def test_claim_push_release_gives_a_fresh_container_without_the_file(
        warm_pools: Callable, alice, settings) -> None:
    slot = warm_pools(nginx=1)["nginx"][0]
    slot = services.slot_claim(runtime=slot.runtime, user=alice)
    content.content_add(slot_id=slot.pk,
                        uploads=[("index.html", io.BytesIO(b"<h1>alice was here</h1>"))])
    assert services.slot_content_sync(slot=slot)
    assert http_get(slot.port, expect="alice was here")[1] == "<h1>alice was here</h1>"
    old_container = slot.container_id

    assert services.slot_release(slot=slot)
    slot.refresh_from_db()
    assert slot.status == S.IDLE and slot.owner is None
    assert slot.container_id != old_container
    status, body = http_get(slot.port)
    assert status == 200 and "alice was here" not in body
    assert content.content_list(slot_id=slot.pk) == []
    assert subprocess.run(["docker", "inspect", old_container],
                          capture_output=True).returncode != 0


def test_reinitialize_keeps_port_and_restores_an_assigned_users_files(
        warm_pools: Callable, alice) -> None:
    slot = warm_pools(apache=1)["apache"][0]
    slot = services.slot_claim(runtime=slot.runtime, user=alice)
    content.content_add(slot_id=slot.pk, uploads=[("index.html", io.BytesIO(b"kept"))])
    services.slot_content_sync(slot=slot)
    old = (slot.container_id, slot.generation)
    assert services.slot_reinitialize(slot=slot)
    slot.refresh_from_db()
    assert slot.status == S.ASSIGNED and slot.owner == alice
    assert (slot.container_id, slot.generation) != old and slot.generation == old[1] + 1
    assert http_get(slot.port, expect="kept")[1] == "kept"


def test_add_and_shrink_on_the_real_engine(warm_pools: Callable, alice) -> None:
    slots = warm_pools(nginx=1)["nginx"]
    services.slot_claim(runtime=slots[0].runtime, user=alice)
    added = services.pool_add(runtime_name="nginx", count=2, wait=True)
    for slot in added:
        slot.refresh_from_db()
        assert slot.status == S.IDLE and http_get(slot.port)[0] == 200
    result = services.pool_set_size(runtime_name="nginx", size=0, wait=True)
    assert result == {"added": 0, "removed": 2, "short": 1}
    assert list(PoolContainer.objects.values_list("owner__username", flat=True)) == ["alice"]


def test_two_instances_on_one_daemon_never_touch_each_other(
        warm_pools: Callable, real_engine: DockerEngine) -> None:
    """A container labelled for another instance (and an unlabelled one) survive our
    init, reconcile and cleanup; our cleanup removes exactly ours."""
    from pools import monitor
    from pools.imagebuild import image_tag

    image = image_tag("nginx")
    other_instance = f"{settings.PAAS_INSTANCE}-other"
    theirs = subprocess.run(
        ["docker", "run", "-d", "--label", f"paas.instance={other_instance}",
         "--label", "paas.slot=1", image], check=True, capture_output=True, text=True,
    ).stdout.strip()
    unlabelled = subprocess.run(["docker", "run", "-d", image], check=True,
                                capture_output=True, text=True).stdout.strip()
    try:
        warm_pools(nginx=1)
        assert monitor.reconcile_pass()["ok"]
        remove_instance_containers(real_engine, settings.PAAS_INSTANCE)
        assert real_engine.list_managed(settings.PAAS_INSTANCE) == []
        assert docker_inspect(theirs)["State"]["Running"]
        assert docker_inspect(unlabelled)["State"]["Running"]
    finally:
        subprocess.run(["docker", "rm", "-f", theirs, unlabelled], capture_output=True)


def test_pool_command_status_and_errors(warm_pools: Callable) -> None:
    from django.core.management import CommandError, call_command

    warm_pools(node=1)
    out = io.StringIO()
    call_command("pool", "status", "--json", stdout=out)
    rows = {row["runtime"]: row for row in json.loads(out.getvalue())}
    assert rows["node"]["idle"] == 1 and rows["node"]["total"] == 1
    with pytest.raises(CommandError, match="unknown runtime 'cobol'"):
        call_command("pool", "add", "cobol", "1")
    with socket.socket() as taken:  # the range's only port is in use on the host
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        Runtime.objects.filter(name="node").update(port_min=port, port_max=port)
        with pytest.raises(CommandError, match="no free port left"):
            call_command("pool", "add", "node", "1")

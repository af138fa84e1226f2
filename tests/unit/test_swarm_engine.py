"""The swarm backend without a swarm: the slot records its node and its URL and health
probe use the node's address; the service spec carries the hardening; task states map
to Docker's container words (a task on a down or drained node is dead)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser

from deployments import selectors
from deployments import services as deployment_services
from pools import health, hostnames, proxy
from pools import services as pool_services
from pools.engine import ContainerInfo, ContainerSpec, EngineEvent, swarm
from pools.engine.swarm import (
    Node,
    SwarmEngine,
    _current_task,
    _service_kwargs,
    _task_status,
)
from pools.errors import EngineUnavailable
from pools.models import PoolContainer
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)
UP = Node(id="n1", addr="10.9.0.11", ready=True, active=True)


def test_slot_records_its_node_and_its_url_and_probe_use_it(
        fake_engine: FakeEngine, warm: Callable, alice: AbstractUser,
        monkeypatch: pytest.MonkeyPatch, settings) -> None:
    settings.PAAS_PUBLIC_HOST = "paas.example.org"
    probed: list[str] = []

    def answers(port: int, **kw: str) -> bool:
        probed.append(kw.get("host", ""))
        return True

    monkeypatch.setattr(health, "http_answers", answers)
    fake_engine.node_addr = "10.9.0.12"
    [slot] = warm("nginx", 1)
    assert (slot.node_id, slot.node_addr) == ("node-10.9.0.12", "10.9.0.12")
    assert set(probed) == {"10.9.0.12"}
    deployment = deployment_services.deployment_create(user=alice, runtime_name="nginx")
    url = selectors.deployment_url(deployment=deployment, request_host="paas.example.org")
    assert url == f"http://10.9.0.12:{slot.port}/"


def test_single_engine_urls_keep_the_public_host(
        fake_engine: FakeEngine, warm: Callable, alice: AbstractUser, settings) -> None:
    settings.PAAS_PUBLIC_HOST = "paas.example.org"
    [slot] = warm("nginx", 1)
    assert slot.node_addr == ""
    deployment = deployment_services.deployment_create(user=alice, runtime_name="nginx")
    url = selectors.deployment_url(deployment=deployment, request_host="x")
    assert url == f"http://paas.example.org:{slot.port}/"


def test_service_spec_is_hardened_and_not_pinned() -> None:
    spec = ContainerSpec(name="paas-t-nginx-8000-g1", image="paas/nginx:x",
                         labels={"paas.instance": "t"}, internal_port=80, host_port=8000,
                         mem_limit_mb=64, cpus=0.5, pids_limit=100, cap_add=["SETUID"])
    kwargs = _service_kwargs(spec)
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["cap_add"] == ["CAP_SETUID"]
    assert kwargs["constraints"] == ["node.labels.paas.pool==true"]
    assert kwargs["endpoint_spec"]["Ports"] == [
        {"PublishedPort": 8000, "TargetPort": 80, "Protocol": "tcp", "PublishMode": "host"}]
    assert kwargs["resources"]["Limits"] == {
        "NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20, "Pids": 100}
    assert kwargs["restart_policy"]["Condition"] == "none"
    assert kwargs["labels"] == kwargs["container_labels"] == {"paas.instance": "t"}


def test_writable_space_is_bounded_by_tmpfs_volumes_the_owner_can_write() -> None:
    """Swarm's own tmpfs mounts lose their mode and owner on Debian's engine: the bound
    places are local tmpfs volumes with the options as given, under a read-only root."""
    spec = ContainerSpec(name="s", image="i", labels={"paas.instance": "t"},
                         internal_port=80, host_port=8000, read_only=True,
                         tmpfs={"/srv/www": "rw,exec,size=70m,mode=0755,uid=1000,gid=1000"})
    kwargs = _service_kwargs(spec)
    assert kwargs["read_only"] is True
    [mount] = kwargs["mounts"]
    assert (mount["Target"], mount["Type"]) == ("/srv/www", "volume")
    assert mount["VolumeOptions"]["Labels"] == {"paas.instance": "t"}
    assert mount["VolumeOptions"]["DriverConfig"] == {"Name": "local", "Options": {
        "type": "tmpfs", "device": "tmpfs", "o": "rw,exec,size=70m,mode=0755,uid=1000,gid=1000"}}


def task(state: str, desired: str = "running", created: str = "2026-01-01T00:00:00.5Z") -> dict:
    return {"Status": {"State": state}, "DesiredState": desired, "CreatedAt": created}


@pytest.mark.parametrize("the_task, node, status", [
    (task("running"), UP, "running"),
    (task("preparing"), UP, "created"),
    (None, UP, "created"),
    (task("running"), Node(id="n1", addr="a", ready=False, active=True), "exited"),
    (task("running"), Node(id="n1", addr="a", ready=True, active=False), "exited"),
    (task("running", desired="shutdown"), UP, "exited"),
    (task("failed", desired="shutdown"), UP, "exited"),
    (task("rejected"), UP, "exited"),
])
def test_task_states_map_to_container_words(the_task: dict | None, node: Node,
                                             status: str) -> None:
    assert _task_status(the_task, node) == status


def test_current_task_is_the_wanted_one_else_the_newest() -> None:
    old = task("shutdown", "shutdown", "2026-01-01T00:00:00.5Z")
    new = task("failed", "shutdown", "2026-01-01T00:00:00.51Z")  # "5Z" > "51Z" as text
    assert _current_task([old, new]) is new
    wanted = task("running", "running", "2026-01-01T00:00:00.1Z")
    assert _current_task([old, wanted, new]) is wanted
    assert _current_task([]) is None


def test_events_report_a_service_that_stopped_running_or_vanished(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker has no task events: the poll turns state changes into die/destroy."""
    def info(service: str, status: str) -> ContainerInfo:
        return ContainerInfo(id=service, name=service, labels={"paas.slot": service[-1]},
                             status=status)

    polls = iter([
        [info("s1", "running"), info("s2", "running"), info("s3", "created")],
        [info("s1", "exited"), info("s2", "running"), info("s3", "running")],  # s1 died
        [info("s3", "running")],  # s1 and s2 removed: s1 was reported already
        [info("s3", "running")],
        [info("s3", "exited")],
    ])
    engine = SwarmEngine.__new__(SwarmEngine)
    engine.poll_interval = 0
    monkeypatch.setattr(engine, "list_managed", lambda instance: next(polls))
    monkeypatch.setattr(engine, "nodes", dict)  # no node to follow
    events = engine.events("t")
    seen = [(e.action, e.container_id, e.labels["paas.slot"]) for e in itertools.islice(events, 3)]
    assert seen == [("die", "s1", "1"), ("destroy", "s2", "2"), ("die", "s3", "3")]


class NodeEvents:
    """A node's engine whose container events are given, then a broken stream."""

    def __init__(self, news: list[EngineEvent]) -> None:
        self.news = news

    def events(self, instance: str) -> Iterator[EngineEvent]:
        yield from self.news
        raise EngineUnavailable("node gone")


def test_events_bring_each_nodes_container_events_as_its_services(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's container dying on a node arrives as its service's event, marked as the
    node's news; containers that are no swarm task are not the platform's."""
    engine = SwarmEngine.__new__(SwarmEngine)
    engine.poll_interval = 2  # the poll must not be what reports it
    engine._lock = threading.Lock()
    task = {"com.docker.swarm.service.id": "svc9", "paas.slot": "9"}
    nodes = {"10.9.0.11": NodeEvents([EngineEvent("die", "c-plain", {"paas.slot": "8"}),
                                      EngineEvent("die", "c-task", task)])}
    monkeypatch.setattr(engine, "nodes", lambda: {"n1": UP})
    monkeypatch.setattr(engine, "node_engine", lambda addr: nodes[addr])
    polls: Iterator[list[ContainerInfo]] = iter([[], []])  # a third poll fails the test: the news never came
    monkeypatch.setattr(engine, "list_managed", lambda instance: next(polls))
    first = next(engine.events("t"))
    assert (first.action, first.container_id, first.trigger) == ("die", "svc9", "watch-node")
    assert first.labels["paas.slot"] == "9"


def test_node_clients_speak_tls_on_tcp_with_a_nodes_own_files_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    class Client:
        def __init__(self, *, timeout: int, base_url: str, tls: Any) -> None:
            made[base_url] = tls

    monkeypatch.setattr(swarm, "DockerEngine", Client)
    for folder in (tmp_path, tmp_path / "10.9.0.12"):
        folder.mkdir(exist_ok=True)
        for name in ("ca.pem", "cert.pem", "key.pem"):
            (folder / name).write_text(name)
    engine = SwarmEngine.__new__(SwarmEngine)
    engine._lock, engine._node_engines, engine._tls_dir = threading.Lock(), {}, str(tmp_path)
    engine._node_urls = {"10.9.0.13": "unix:///run/n3.sock"}
    for addr in ("10.9.0.11", "10.9.0.12", "10.9.0.13"):
        engine.node_engine(addr)
    shared = made["tcp://10.9.0.11:2376"]
    assert shared.cert == (f"{tmp_path}/cert.pem", f"{tmp_path}/key.pem")
    assert (shared.ca_cert, shared.verify) == (f"{tmp_path}/ca.pem", True)
    assert made["tcp://10.9.0.12:2376"].cert[0] == f"{tmp_path}/10.9.0.12/cert.pem"
    assert made["unix:///run/n3.sock"] is None


def test_a_slot_recovered_on_another_node_takes_its_route_along(
        fake_engine: FakeEngine, warm: Callable, alice: AbstractUser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[bool] = []
    monkeypatch.setattr(hostnames, "routes_sync_later", lambda: syncs.append(True))
    fake_engine.node_addr = "10.9.0.11"
    warm("nginx", 1)
    deployment_services.deployment_create(user=alice, runtime_name="nginx")
    slot = PoolContainer.objects.get()
    fake_engine.node_addr = "10.9.0.13"  # the old node is gone: Swarm places it elsewhere
    fake_engine.kill(slot.container_id)
    assert pool_services.slot_recover(slot=slot, reason="node down")
    slot.refresh_from_db()
    assert (slot.status, slot.node_addr) == ("assigned", "10.9.0.13")
    assert syncs, "no route sync was asked for"
    [route] = [r for r in proxy.caddy_config(proxy.routes_desired())["apps"]["http"]["servers"]
               ["paas"]["routes"] if r["@id"].endswith(f"slot-{slot.pk}")]
    assert route["handle"][-1]["upstreams"] == [{"dial": f"10.9.0.13:{slot.port}"}]

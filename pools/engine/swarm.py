"""The Docker Swarm backend: a slot is a one-replica service.

The service carries our labels (on the service and on its container), the runtime's
limits and hardening, and publishes its port in **host mode** on whichever pool node
(``node.labels.paas.pool==true``) Swarm places its one task; nothing pins it to a node.
The slot's "container id" is the service id: ``inspect`` maps the service's current task
to a ``ContainerInfo`` carrying the node's id and address.

Swarm's restart policy is ``none``, as on one engine: the platform, not the daemon,
replaces a dead slot (a new generation, a new service placed by Swarm on a live node, the
user's files pushed into it). A task whose node is down or drained counts as dead.

Swarm's manager cannot reach into a container on another node, so exec, archive push,
logs and signals go to the node's own engine API: one ``DockerEngine`` client per node,
``PAAS_SWARM_NODES`` (``<addr>=<url>,…``) or ``tcp://<addr>:2376``. A ``tcp://`` client
speaks TLS with the files ``ca.pem``, ``cert.pem``, ``key.pem`` of ``PAAS_SWARM_TLS_DIR``
(or of its ``<addr>/`` folder, when a node has its own), verifying the node's certificate.

Docker has no task events, so ``events`` polls task state, and follows each node's own
container events (a thread per node) so that a container dying on a node is noticed at
once. Images are built on the control host's engine (``PAAS_SWARM_BUILDER``) and sent
to every pool node that lacks them (``image_send``: save from one, load into the other;
no registry).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pools.engine.base import LABEL_INSTANCE, ContainerInfo, ContainerSpec, EngineEvent
from pools.engine.local import DockerEngine, _label_filters
from pools.errors import EngineError

POOL_CONSTRAINT = "node.labels.paas.pool==true"
# Task states on the way to running (Docker's words); anything else that is not
# "running" is over: complete, failed, rejected, shutdown, orphaned, remove.
STARTING = {"new", "allocated", "pending", "assigned", "accepted", "ready", "preparing",
            "starting"}


@dataclass
class Node:
    id: str
    addr: str
    ready: bool  # the manager hears its heartbeat
    active: bool  # availability "active" (not paused or drained)


class SwarmEngine:
    """One manager client for services, tasks and nodes; one client per node for the
    containers themselves."""

    def __init__(self, *, manager_url: str, node_urls: dict[str, str] | None = None,
                 tls_dir: str = "", builder_url: str = "", start_timeout: float = 60.0,
                 poll_interval: float = 1.0) -> None:
        self._manager = DockerEngine(base_url=manager_url)
        self._client = self._manager._client
        self._node_urls = dict(node_urls or {})
        self._tls_dir = tls_dir
        self._builder_url = builder_url
        self._builder: DockerEngine | None = None
        self._node_engines: dict[str, DockerEngine] = {}
        self._lock = threading.Lock()
        self.start_timeout = start_timeout
        self.poll_interval = poll_interval

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._manager._call(fn, *args, **kwargs)

    def ping(self) -> None:
        self._manager.ping()

    # -- networks: tasks use each node's own bridge, where the node's engine runs with
    # --icc=false (swarm networks are overlays, which cannot turn inter-container
    # traffic off) ---------------------------------------------------------------------
    def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        return None

    def remove_network(self, name: str) -> None:
        return None

    # -- nodes --------------------------------------------------------------------------
    def nodes(self) -> dict[str, Node]:
        found = self._call(self._client.api.nodes)
        return {raw["ID"]: _node(raw) for raw in found}

    def node_engine(self, addr: str) -> DockerEngine:
        """The engine API of the node at ``addr`` (one client per node, kept)."""
        with self._lock:
            engine = self._node_engines.get(addr)
            if engine is None:
                url = self._node_urls.get(addr) or f"tcp://{addr}:2376"
                tls = self._tls(addr) if url.startswith(("tcp://", "https://")) else None
                engine = DockerEngine(timeout=30, base_url=url, tls=tls)
                self._node_engines[addr] = engine
            return engine

    def _tls(self, addr: str) -> Any:
        """The client side of a node's TLS API: our client certificate, and the CA that
        signed the node's server certificate (whose name or IP must be ``addr``)."""
        if not self._tls_dir:
            return None
        from docker.tls import TLSConfig

        folder = Path(self._tls_dir)
        if (folder / addr / "cert.pem").is_file():
            folder = folder / addr  # this node has files of its own
        return TLSConfig(client_cert=(str(folder / "cert.pem"), str(folder / "key.pem")),
                         ca_cert=str(folder / "ca.pem"), verify=True)

    # -- services -----------------------------------------------------------------------
    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the slot's service (or adopt one of that name) and wait until its task
        runs, so callers get what ``DockerEngine.create`` gives: a started container."""
        try:
            service_id = self._call(self._client.services.create, **_service_kwargs(spec)).id
        except EngineError as exc:
            if getattr(exc.__cause__, "status_code", None) != 409:
                raise
            service_id = self._service_named(spec.name)  # adopt
        return self._wait_started(service_id)

    def replace(self, old_id: str, spec: ContainerSpec) -> ContainerInfo:
        """The old service goes first: a service starts as soon as it is created."""
        self.stop(old_id)
        return self.create(spec)

    def _service_named(self, name: str) -> str:
        found = self._call(self._client.api.services, filters={"name": name})
        exact = [raw["ID"] for raw in found if raw["Spec"]["Name"] == name]
        if not exact:
            raise EngineError(f"service {name} neither created nor found")
        return exact[0]

    def _wait_started(self, service_id: str) -> ContainerInfo:
        deadline = time.monotonic() + self.start_timeout
        while True:
            info = self.inspect(service_id)
            if info is None:
                raise EngineError(f"service {service_id[:12]} vanished while starting")
            if info.status != "created" or time.monotonic() > deadline:
                return info
            time.sleep(0.2)

    def stop(self, container_id: str) -> None:
        """A service has no stopped state that frees its port: removing it does."""
        self.remove(container_id)

    def remove(self, container_id: str) -> None:
        """Remove the service and wait (bounded) until its task's container is gone, so
        its host port is free again for the slot's next service."""
        leftovers = [(engine, container, engine.volumes_of(container))
                     for engine, container in self._live_containers(container_id)]
        instance = self._instance_of(container_id)
        try:
            self._call(self._client.api.remove_service, container_id)
        except EngineError as exc:
            if getattr(exc.__cause__, "status_code", None) != 404:
                raise
        deadline = time.monotonic() + 20
        for engine, container, volumes in leftovers:
            while time.monotonic() < deadline and engine.inspect(container) is not None:
                time.sleep(0.2)
            # Its tmpfs volumes (Swarm leaves them), once the agent lets go of them.
            while not engine.volumes_remove(volumes) and time.monotonic() < deadline:
                time.sleep(0.2)
            if instance:  # and any an earlier removal had to leave behind
                engine.volumes_prune(instance)

    def _instance_of(self, service_id: str) -> str:
        try:
            raw = self._call(self._client.api.inspect_service, service_id)
        except EngineError:
            return ""
        return str((raw["Spec"].get("Labels") or {}).get(LABEL_INSTANCE, ""))

    def _live_containers(self, service_id: str) -> list[tuple[DockerEngine, str]]:
        """The service's task containers on nodes that are up (a down node's container
        is stopped by its engine when the node comes back: Swarm says it is removed)."""
        try:
            tasks = self._call(self._client.api.tasks, filters={"service": service_id})
        except EngineError as exc:
            if getattr(exc.__cause__, "status_code", None) == 404:
                return []
            raise
        nodes = self.nodes()
        return [
            (self.node_engine(node.addr), _task_container(task))
            for task in tasks
            if _task_container(task)
            and (node := nodes.get(task.get("NodeID", ""), _NOWHERE)).ready
        ]

    def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            raw = self._call(self._client.api.inspect_service, container_id)
        except EngineError as exc:
            if getattr(exc.__cause__, "status_code", None) == 404:
                return None
            raise
        tasks = self._call(self._client.api.tasks, filters={"service": raw["ID"]})
        return _service_info(raw, tasks, self.nodes())

    def list_managed(self, instance: str, **labels: str) -> list[ContainerInfo]:
        services = self._call(self._client.api.services,
                              filters={"label": _label_filters(instance, labels)})
        if not services:
            return []
        tasks = self._call(self._client.api.tasks,
                           filters={"label": [f"{LABEL_INSTANCE}={instance}"]})
        by_service: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(task["ServiceID"], []).append(task)
        nodes = self.nodes()
        return [_service_info(raw, by_service.get(raw["ID"], []), nodes) for raw in services]

    # -- the task's container, through its node's engine ----------------------------------
    def _on_node(self, container_id: str) -> tuple[DockerEngine, str]:
        info = self.inspect(container_id)
        if info is None or not info.running:
            state = info.status if info else "gone"
            raise EngineError(f"service {container_id[:12]} has no running task ({state})")
        task = _current_task(
            self._call(self._client.api.tasks, filters={"service": container_id}))
        assert task is not None  # a running info has one
        return self.node_engine(info.node_addr), _task_container(task)

    def exec(self, container_id: str, cmd: list[str], user: str = "") -> tuple[int, str]:
        engine, container = self._on_node(container_id)
        return engine.exec(container, cmd, user=user)

    def put_archive(self, container_id: str, path: str, data: bytes,
                    replace: bool = False) -> None:
        engine, container = self._on_node(container_id)
        engine.put_archive(container, path, data, replace=replace)

    def logs(self, container_id: str, tail: int = 100, timestamps: bool = False) -> str:
        engine, container = self._on_node(container_id)
        return engine.logs(container, tail=tail, timestamps=timestamps)

    def signal(self, container_id: str, signal: str) -> None:
        engine, container = self._on_node(container_id)
        engine.signal(container, signal)

    def network_rx_bytes(self, container_id: str) -> int | None:
        try:
            engine, container = self._on_node(container_id)
        except EngineError:
            return None  # no running task: nothing received
        return engine.network_rx_bytes(container)

    def events(self, instance: str) -> Iterator[EngineEvent]:
        """Both kinds of news, merged: each ready node's container events (a thread per
        node, ``trigger`` "watch-node"), and the manager's task state, polled (Docker has
        no task events): a slot's service that stopped running (its node went down or
        was drained) is reported as ``die``, one that disappeared as ``destroy``."""
        news: queue.Queue[EngineEvent] = queue.Queue()
        followed: set[str] = set()
        stop = threading.Event()
        last: dict[str, ContainerInfo] = {}
        try:
            while True:
                self._follow_nodes(instance, news, followed, stop)
                now = {info.id: info for info in self.list_managed(instance)}
                yield from _task_changes(last, now)
                last = now
                deadline = time.monotonic() + self.poll_interval
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        yield news.get(timeout=left)
                    except queue.Empty:
                        break
        finally:
            stop.set()  # the node threads end at their next event or broken stream

    def _follow_nodes(self, instance: str, news: queue.Queue[EngineEvent],
                      followed: set[str], stop: threading.Event) -> None:
        """A thread per ready node not followed yet (again after its stream broke)."""
        for node in self.nodes().values():
            with self._lock:
                if not node.ready or node.addr in followed:
                    continue
                followed.add(node.addr)
            threading.Thread(target=self._follow_node, daemon=True,
                             name=f"paas-events-{node.addr}",
                             args=(node.addr, instance, news, followed, stop)).start()

    def _follow_node(self, addr: str, instance: str, news: queue.Queue[EngineEvent],
                     followed: set[str], stop: threading.Event) -> None:
        """One node's container events, as events of the slots' services (a swarm task's
        container carries its service's id in a label)."""
        try:
            for event in self.node_engine(addr).events(instance):
                if stop.is_set():
                    return
                service_id = event.labels.get("com.docker.swarm.service.id", "")
                if service_id:
                    news.put(EngineEvent(event.action, service_id, event.labels,
                                         trigger="watch-node"))
        except EngineError:
            pass  # the node is down or unreachable: the task poll covers it meanwhile
        finally:
            with self._lock:
                followed.discard(addr)

    # -- images: built on the control host's engine, sent to every pool node ----------
    def builder(self) -> DockerEngine:
        """The engine that builds the runtime images: the control host's own."""
        with self._lock:
            if self._builder is None:
                self._builder = DockerEngine(base_url=self._builder_url)
            return self._builder

    def image_send(self, tag: str, progress: Callable[[str], None]) -> list[str]:
        """Load ``tag`` into every ready node that lacks it, straight from the builder's
        ``docker save`` stream (no registry, no file); returns the nodes' addresses."""
        lacking = [n.addr for n in self.nodes().values()
                   if n.ready and not self.node_engine(n.addr).image_exists(tag)]

        def send(addr: str) -> None:
            progress(f"{tag}: sending to node {addr} …")
            started = time.monotonic()
            self.node_engine(addr).load_image(self.builder().save_image(tag))
            progress(f"{tag}: on node {addr} in {time.monotonic() - started:.0f} s")

        with ThreadPoolExecutor(max_workers=4) as pool:  # nodes load at the same time
            list(pool.map(send, lacking))
        return lacking

    def image_exists(self, tag: str) -> bool:
        return self.builder().image_exists(tag)

    def image_tags(self, repository: str) -> list[str]:
        return self.builder().image_tags(repository)

    def pull_image(self, ref: str, tag: str) -> bool:
        return self.builder().pull_image(ref, tag)

    def import_image(self, tar_path: Path, tag: str) -> None:
        self.builder().import_image(tar_path, tag)

    def build_image(self, context_dir: Path, tag: str, buildargs: dict[str, str],
                    progress: Callable[[str], None]) -> None:
        self.builder().build_image(context_dir, tag, buildargs, progress)

    def tag_image(self, source: str, tag: str) -> None:
        self.builder().tag_image(source, tag)

    def untag_image(self, tag: str) -> None:
        self.builder().untag_image(tag)  # old tags on the nodes are the playbook's to prune


_NOWHERE = Node(id="", addr="", ready=False, active=False)


def _node(raw: dict[str, Any]) -> Node:
    status = raw.get("Status", {})
    addr = str(status.get("Addr", ""))
    if addr in ("", "0.0.0.0"):  # a manager may report its manager address only
        addr = str(raw.get("ManagerStatus", {}).get("Addr", "")).rsplit(":", 1)[0]
    return Node(id=raw["ID"], addr=addr, ready=status.get("State") == "ready",
                active=raw.get("Spec", {}).get("Availability") == "active")


def _task_changes(last: dict[str, ContainerInfo],
                  now: dict[str, ContainerInfo]) -> Iterator[EngineEvent]:
    for service_id, before in last.items():
        after = now.get(service_id)
        if not before.running:
            continue  # reported already, or never ran
        if after is None:
            yield EngineEvent("destroy", service_id, before.labels)
        elif not after.running:
            yield EngineEvent("die", service_id, after.labels)


def _service_kwargs(spec: ContainerSpec) -> dict[str, Any]:
    """The slot's service: the hardening of ``local._run_kwargs`` in Swarm's terms. Swarm
    cannot bind a published port to one address (a firewall admits only the control
    host), nor ask for no-new-privileges before API 1.44 (pool nodes' engines run with
    --no-new-privileges), nor limit swap (pool nodes run without).

    The bounded writable space (a read-only root, ``spec.tmpfs``) is kept, but not with
    Swarm's tmpfs mounts: they cannot have an owner before API 1.46, and Debian's 20.10
    engine ignores their mode (root's 0755), so uid 1000 could not write its content
    root. Each is an anonymous volume of the local driver of type tmpfs instead, whose
    mount options (size, mode, uid) the kernel applies as given; labelled with our
    instance so that ``remove`` prunes them (Swarm leaves a task's volumes behind)."""
    from docker.types import (
        DriverConfig,
        EndpointSpec,
        Mount,
        Resources,
        RestartPolicy,
        ServiceMode,
    )

    resources = Resources(cpu_limit=int(spec.cpus * 1e9), mem_limit=spec.mem_limit_mb << 20)
    resources["Limits"]["Pids"] = spec.pids_limit
    return {
        "image": spec.image,
        "name": spec.name,
        "labels": spec.labels,
        "container_labels": spec.labels,
        "env": [f"{key}={value}" for key, value in spec.environment.items()],
        "mode": ServiceMode("replicated", replicas=1),
        "endpoint_spec": EndpointSpec(ports={spec.host_port: (spec.internal_port, "tcp", "host")}),
        "constraints": [POOL_CONSTRAINT],
        "cap_drop": ["ALL"],
        "cap_add": [f"CAP_{cap}" for cap in spec.cap_add],
        "resources": resources,
        "log_driver": "json-file",
        "log_driver_options": {"max-size": "1m", "max-file": "2"},
        "restart_policy": RestartPolicy(condition="none"),  # the platform recovers
        "read_only": spec.read_only,
        "mounts": [
            Mount(target=path, source=None, type="volume",
                  labels={LABEL_INSTANCE: spec.labels.get(LABEL_INSTANCE, "")},
                  driver_config=DriverConfig("local", {"type": "tmpfs", "device": "tmpfs",
                                                       "o": options}))
            for path, options in spec.tmpfs.items()
        ],
    }


def _created(task: dict[str, Any]) -> str:
    """CreatedAt with its fraction padded: Go trims trailing zeros, which breaks order."""
    stamp = str(task.get("CreatedAt", ""))
    head, _, frac = stamp.rstrip("Z").partition(".")
    return f"{head}.{frac.ljust(9, '0')}"


def _current_task(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The task Swarm wants running, else the newest one."""
    if not tasks:
        return None
    wanted = [t for t in tasks if t.get("DesiredState") == "running"]
    return max(wanted or tasks, key=_created)


def _task_container(task: dict[str, Any]) -> str:
    return str(task["Status"].get("ContainerStatus", {}).get("ContainerID", ""))


def _service_info(raw: dict[str, Any], tasks: list[dict[str, Any]],
                  nodes: dict[str, Node]) -> ContainerInfo:
    spec = raw["Spec"]
    task = _current_task(tasks)
    node = nodes.get(task.get("NodeID", ""), _NOWHERE) if task else _NOWHERE
    return ContainerInfo(
        id=raw["ID"], name=spec["Name"], labels=dict(spec.get("Labels") or {}),
        status=_task_status(task, node),
        exit_code=int(task["Status"].get("ContainerStatus", {}).get("ExitCode", 0) or 0)
        if task else 0,
        node_id=node.id, node_addr=node.addr,
    )


def _task_status(task: dict[str, Any] | None, node: Node) -> str:
    """Docker's container words for a task: running only while it runs on a node that
    is up and not drained; "created" while it is on its way; else "exited".
    (Pending for good, e.g. no node can take it, stays "created": the reconcile pass
    treats a slot that is not running as dead all the same.)"""
    if task is None:
        return "created"  # just created: Swarm has not made its task yet
    state = task["Status"]["State"]
    if task.get("DesiredState") != "running":
        return "exited"  # shutting down: drained, removed or rescheduled
    if state in STARTING:
        return "created"
    if state == "running" and node.ready and node.active:
        return "running"
    return "exited"

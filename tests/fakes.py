"""Test doubles for outside systems: the in-memory engine of the unit tests."""

from __future__ import annotations

import io
import itertools
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pools.engine import LABEL_INSTANCE, ContainerInfo, ContainerSpec, EngineEvent
from pools.errors import EngineError, EngineUnavailable


class FakeEngine:
    """An in-memory engine for unit tests: containers are dicts, files are a dict of
    path → bytes per container. It keeps the real engine's contracts (409 adopt,
    idempotent remove, label filters) so services behave the same on both."""

    def __init__(self) -> None:
        self.containers: dict[str, ContainerInfo] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.signals: list[tuple[str, str]] = []
        self.specs: dict[str, ContainerSpec] = {}
        self.images: set[str] = set()
        self.networks: set[str] = set()
        self.available = True
        self.fail_create = False
        self.pending_events: list[EngineEvent] = []
        self.rx_bytes: dict[str, int] = {}  # container id → bytes received (tests set it)
        self.node_addr = ""  # set it to play a swarm: new containers run on that node
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _check(self) -> None:
        if not self.available:
            raise EngineUnavailable("Docker engine not reachable (fake engine switched off)")

    def ping(self) -> None:
        self._check()

    def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        self._check()
        self.networks.add(name)

    def remove_network(self, name: str) -> None:
        self.networks.discard(name)

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        self._check()
        if self.fail_create:
            raise EngineError("fake engine: create refused")
        with self._lock:
            info = next((i for i in self.containers.values() if i.name == spec.name), None)
            if info is None:
                info = ContainerInfo(
                    id=f"fake{next(self._ids):08d}", name=spec.name,
                    labels=dict(spec.labels), status="created",
                    node_id=f"node-{self.node_addr}" if self.node_addr else "",
                    node_addr=self.node_addr,
                )
                self.containers[info.id] = info
                self.specs[info.id] = spec
                self.files[info.id] = {}
            elif info.status == "running":
                return info  # 409: adopt
            # As Docker's start: a host port another running container publishes is
            # refused, and the created container stays (the next create adopts it).
            if self._port_holder(spec, info.id):
                raise EngineError(f"fake engine: port {spec.host_port} is already allocated")
            info.status = "running"
            return info

    def replace(self, old_id: str, spec: ContainerSpec) -> ContainerInfo:
        self.stop(old_id)  # in turn (the real engine overlaps them; the outcome is the same)
        return self.create(spec)

    def _port_holder(self, spec: ContainerSpec, container_id: str) -> str:
        for other_id, other in self.containers.items():
            other_spec = self.specs.get(other_id)
            if (other_id != container_id and other.running and other_spec is not None
                    and other_spec.host_port == spec.host_port
                    and other_spec.bind_ip == spec.bind_ip):
                return other_id
        return ""

    def stop(self, container_id: str) -> None:
        self._check()
        info = self.containers.get(container_id)
        if info is not None and info.running:
            info.status, info.exit_code = "exited", 137

    def remove(self, container_id: str) -> None:
        self._check()
        with self._lock:
            self.containers.pop(container_id, None)
            self.files.pop(container_id, None)

    def inspect(self, container_id: str) -> ContainerInfo | None:
        self._check()
        return self.containers.get(container_id)

    def list_managed(self, instance: str, **labels: str) -> list[ContainerInfo]:
        self._check()
        wanted = {LABEL_INSTANCE: instance, **{f"paas.{k}": v for k, v in labels.items()}}
        return [
            info for info in list(self.containers.values())
            if all(info.labels.get(key) == value for key, value in wanted.items())
        ]

    def exec(self, container_id: str, cmd: list[str], user: str = "") -> tuple[int, str]:
        self._require(container_id)
        if cmd[:1] == ["find"] and "-delete" in cmd:
            self.files[container_id] = {}  # our "clear the content root" command
        return 0, ""

    def put_archive(self, container_id: str, path: str, data: bytes,
                    replace: bool = False) -> None:
        self._require(container_id)
        if replace:
            self.files[container_id] = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    content = archive.extractfile(member)
                    assert content is not None
                    self.files[container_id][f"{path}/{member.name}"] = content.read()

    def logs(self, container_id: str, tail: int = 100, timestamps: bool = False) -> str:
        self._require(container_id)
        stamp = "2026-01-01T00:00:00.000000001Z " if timestamps else ""
        return f"{stamp}fake log of {container_id}\n"

    def signal(self, container_id: str, signal: str) -> None:
        self._require(container_id)
        self.signals.append((container_id, signal))

    def network_rx_bytes(self, container_id: str) -> int | None:
        self._check()
        if container_id not in self.containers:
            return None
        return self.rx_bytes.get(container_id, 0)

    def events(self, instance: str) -> Iterator[EngineEvent]:
        self._check()
        while self.pending_events:
            yield self.pending_events.pop(0)

    def _require(self, container_id: str) -> ContainerInfo:
        self._check()
        info = self.containers.get(container_id)
        if info is None:
            raise EngineError(f"container {container_id} does not exist")
        return info

    # test helpers: faults a real daemon would show
    def kill(self, container_id: str, *, oom: bool = False) -> None:
        info = self.containers[container_id]
        info.status, info.exit_code, info.oom_killed = "exited", 137, oom

    def image_exists(self, tag: str) -> bool:
        return tag in self.images

    def pull_image(self, ref: str, tag: str) -> bool:
        return False

    def import_image(self, tar_path: Path, tag: str) -> None:
        self.images.add(tag)

    def build_image(
        self, context_dir: Path, tag: str, buildargs: dict[str, str],
        progress: Callable[[str], None],
    ) -> None:
        self.images.add(tag)

    def tag_image(self, source: str, tag: str) -> None:
        self.images.add(tag)

    def image_tags(self, repository: str) -> list[str]:
        return sorted(t for t in self.images if t.startswith(repository + ":"))

    def untag_image(self, tag: str) -> None:
        self.images.discard(tag)

    def image_send(self, tag: str, progress: Callable[[str], None]) -> list[str]:
        return []

"""What every engine backend speaks: specs, container views, events, the interface.

Backends raise the project's own errors (``pools.errors``): NotFound from Docker means
"already gone" (stop and remove are idempotent), 409 on create means "inspect and adopt", any other
API error is one ``EngineError``, and an unreachable daemon is ``EngineUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

LABEL_INSTANCE = "paas.instance"
LABEL_RUNTIME = "paas.runtime"
LABEL_PORT = "paas.port"
LABEL_SLOT = "paas.slot"
LABEL_GENERATION = "paas.generation"


@dataclass
class ContainerSpec:
    """Everything needed to run one slot's container."""

    name: str
    image: str
    labels: dict[str, str]
    internal_port: int
    host_port: int
    bind_ip: str = "0.0.0.0"
    network: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    mem_limit_mb: int = 256
    cpus: float = 0.5
    pids_limit: int = 256
    cap_add: list[str] = field(default_factory=list)
    # A read-only root with size-bounded tmpfs mounts (path → mount options) for every
    # place the container writes: its files live in its memory, never on the host's disk.
    read_only: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerInfo:
    id: str
    name: str
    labels: dict[str, str]
    status: str  # Docker's word: created, running, exited, dead, ...
    exit_code: int = 0
    oom_killed: bool = False
    # Where it runs, on a swarm (the node's id and the address its ports answer on);
    # empty on a single engine, where that is the control host itself.
    node_id: str = ""
    node_addr: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def slot_id(self) -> int | None:
        value = self.labels.get(LABEL_SLOT, "")
        return int(value) if value.isdigit() else None

    @property
    def generation(self) -> int | None:
        value = self.labels.get(LABEL_GENERATION, "")
        return int(value) if value.isdigit() else None


@dataclass
class EngineEvent:
    action: str  # die, oom, destroy, start, ...
    container_id: str
    labels: dict[str, str]
    # The recovery's trigger when this event queues one: "watch" (the engine's own
    # events, or a swarm's task poll), "watch-node" (a swarm node's container events).
    trigger: str = "watch"


class Engine(Protocol):
    def ping(self) -> None: ...
    def ensure_network(self, name: str, labels: dict[str, str]) -> None: ...
    def remove_network(self, name: str) -> None: ...
    def create(self, spec: ContainerSpec) -> ContainerInfo: ...
    # ``stop(old_id)`` and then ``create(spec)`` (the old container holds the port).
    def replace(self, old_id: str, spec: ContainerSpec) -> ContainerInfo: ...
    def stop(self, container_id: str) -> None: ...
    def remove(self, container_id: str) -> None: ...
    def inspect(self, container_id: str) -> ContainerInfo | None: ...
    def list_managed(self, instance: str, **labels: str) -> list[ContainerInfo]: ...
    def exec(self, container_id: str, cmd: list[str], user: str = "") -> tuple[int, str]: ...
    def put_archive(self, container_id: str, path: str, data: bytes,
                    replace: bool = False) -> None: ...
    def logs(self, container_id: str, tail: int = 100, timestamps: bool = False) -> str: ...
    def events(self, instance: str) -> Iterator[EngineEvent]: ...
    def signal(self, container_id: str, signal: str) -> None: ...
    def network_rx_bytes(self, container_id: str) -> int | None: ...
    def image_exists(self, tag: str) -> bool: ...
    def pull_image(self, ref: str, tag: str) -> bool: ...
    def import_image(self, tar_path: Path, tag: str) -> None: ...
    def build_image(
        self, context_dir: Path, tag: str, buildargs: dict[str, str],
        progress: Callable[[str], None],
    ) -> None: ...
    def tag_image(self, source: str, tag: str) -> None: ...
    def image_tags(self, repository: str) -> list[str]: ...
    def untag_image(self, tag: str) -> None: ...
    def image_send(self, tag: str, progress: Callable[[str], None]) -> list[str]: ...

"""A real 3-node Docker Swarm for this run (infrastructure/scripts/swarm-lab.sh): each
node a dockerd in its own network namespace, its engine API on TLS, named after this
run, removed afterwards. The nodes start empty: the images the tests run are sent to
them by the platform's own ``images_to_nodes`` (what `pool build-images` does on a
swarm). A lab that cannot start fails the tests; it never skips them."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pools.engine import DockerEngine
from pools.engine.swarm import SwarmEngine
from pools.imagebuild import build_images, images_to_nodes
from tests.lab import lab_script, running_lab

RUNTIMES = ["nginx"]  # only the images these tests run are loaded into the nodes


@dataclass
class Lab:
    id: str
    env: dict[str, str]  # PAAS_SWARM_* settings of the platform on this lab

    @property
    def addrs(self) -> list[str]:
        return self.env["PAAS_SWARM_NODE_ADDRS"].split(",")

    @property
    def platform_env(self) -> dict[str, str]:
        """What the platform is told: the manager and the nodes' TLS APIs (the nodes'
        unix sockets are the lab's own, for the tests' direct looks)."""
        return {k: v for k, v in self.env.items() if k != "PAAS_SWARM_NODE_SOCKETS"}

    def node_socket(self, addr: str) -> str:
        sockets = dict(pair.split("=", 1)
                       for pair in self.env["PAAS_SWARM_NODE_SOCKETS"].split(","))
        return sockets[addr]

    def engine(self) -> SwarmEngine:
        nodes = dict(pair.split("=", 1) for pair in self.env["PAAS_SWARM_NODES"].split(","))
        return SwarmEngine(manager_url=self.env["PAAS_SWARM_MANAGER"], node_urls=nodes,
                           tls_dir=self.env["PAAS_SWARM_TLS_DIR"])

    def script(self, *args: str) -> str:
        return lab_script(*args)

    def manager(self, *args: str) -> str:
        """``docker …`` against the swarm's manager."""
        return subprocess.run(["docker", "-H", self.env["PAAS_SWARM_MANAGER"], *args],
                              check=True, capture_output=True, text=True,
                              timeout=60).stdout.strip()

    def node_number(self, addr: str) -> int:
        return self.addrs.index(addr) + 1

    def node_id(self, addr: str) -> str:
        for node_id in self.manager("node", "ls", "-q").split():
            if self.manager("node", "inspect", "-f", "{{.Status.Addr}}", node_id) == addr:
                return node_id
        raise AssertionError(f"no node at {addr}")


@pytest.fixture(scope="session")
def swarm_lab() -> Iterator[Lab]:
    # On the control host's engine (a no-op when up to date; other runs' tags are kept).
    tags = build_images(DockerEngine(), runtimes=RUNTIMES, prune=False,
                        progress=lambda line: None)
    lab_id = f"{os.getpid() % 100000:05d}"[-5:] + "s"
    with running_lab(lab_id, "up", "3") as env:
        lab = Lab(id=lab_id, env=env)
        started = time.monotonic()
        sent = images_to_nodes(lab.engine(), tags=list(tags.values()), progress=print)
        print(f"METRIC {len(tags)} image(s) sent to 3 nodes over TLS in "
              f"{time.monotonic() - started:.1f} s")
        assert all(sorted(addrs) == sorted(lab.addrs) for addrs in sent.values()), sent
        yield lab

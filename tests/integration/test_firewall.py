"""From inside a user's container, the platform's own ports on the host (gunicorn,
Caddy's admin) are unreachable once the platform's firewall rules are in — even when a
service is misconfigured to listen on every interface, as simulated here."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pools import firewall
from pools.engine import DockerEngine
from pools.models import PoolContainer

pytestmark = pytest.mark.integration

# Runs in the container: connect to the host through the bridge gateway.
PROBE = """
import socket, struct, sys
for line in open("/proc/net/route").read().splitlines()[1:]:
    fields = line.split()
    if fields[1] == "00000000":
        gateway = socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
for port in sys.argv[1:]:
    try:
        socket.create_connection((gateway, int(port)), timeout=1.5).close()
        print(port, "open")
    except OSError as exc:
        print(port, "closed", type(exc).__name__)
"""


@pytest.fixture
def exposed_services(settings: Any) -> Iterator[list[int]]:
    """Two listeners on 0.0.0.0 standing in for gunicorn and Caddy's admin endpoint."""
    listeners = []
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 0))
        sock.listen(8)
        listeners.append(sock)
    ports = [s.getsockname()[1] for s in listeners]
    settings.PAAS_PORT = ports[0]
    settings.PAAS_CADDY_ADMIN = f"127.0.0.1:{ports[1]}"
    yield ports
    firewall.firewall_remove()
    for sock in listeners:
        sock.close()


def probe(engine: DockerEngine, slot: PoolContainer, ports: list[int]) -> dict[int, str]:
    code, output = engine.exec(slot.container_id,
                               ["python3", "-c", PROBE, *map(str, ports)], user="1000")
    assert code == 0, output
    return {int(line.split()[0]): line.split()[1] for line in output.splitlines()}


def test_containers_cannot_reach_the_platforms_ports_on_the_host(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], real_engine: DockerEngine,
        exposed_services: list[int]) -> None:
    [slot] = warm_pools(python=1)["python"]
    assert probe(real_engine, slot, exposed_services) == {p: "open" for p in exposed_services}

    assert len(firewall.firewall_install()) == 3
    assert firewall.firewall_install() == []  # idempotent

    assert probe(real_engine, slot, exposed_services) == {p: "closed" for p in exposed_services}
    # The host itself still reaches them over loopback.
    socket.create_connection(("127.0.0.1", exposed_services[0]), timeout=2).close()
    assert any("127.0.0.0/8" in rule for rule in firewall.firewall_installed())
    assert firewall.firewall_remove() == 3
    assert firewall.firewall_installed() == []

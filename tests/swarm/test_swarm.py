"""The platform on a real 3-node Docker Swarm (``PAAS_ENGINE=swarm``): a live stack
(gunicorn, the django-q2 cluster and the watcher as real processes) whose slots are
one-replica services spread over the lab's nodes.

- every node serves: claim, upload, logs, restart and release on slots on each node;
- draining a node moves its slots to the others with the users' files;
- a lost node (its dockerd killed): every assigned slot that lived there serves its
  user's files again from another node. ``pytest -s`` shows the measured times;
- a container killed on its node is noticed by that node's container events;
- the platform reaches the nodes' engines only over TLS (the lab's own CA and client
  certificate), so every content push, log read and restart above goes over it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import requests
from django.conf import settings

from tests.live import LiveStack, LiveUser
from tests.swarm.conftest import Lab

pytestmark = [pytest.mark.swarm]
POOL = 6


# --- helpers -------------------------------------------------------------------------
def wait_for(what: str, check: Callable[[], Any], timeout: float,
             interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(interval)


def fetch(url: str) -> str:
    """The page at ``url``, or "" when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode("utf-8", "replace"))
    except (OSError, urllib.error.URLError):
        return ""


def serves(url: str, marker: str) -> bool:
    return marker in fetch(url)


def slots(stack: LiveStack) -> list[dict]:
    db = sqlite3.connect(f"file:{stack.data_dir / 'paas.sqlite3'}?mode=ro", uri=True,
                         timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(
            "SELECT id, port, status, owner_id, node_addr, container_id "
            "FROM pools_poolcontainer ORDER BY port")]
    finally:
        db.close()


def site(user: LiveUser, marker: str) -> dict:
    """A new nginx deployment serving ``marker`` from its own index.html."""
    deployment = user.launch("nginx")
    user.upload(deployment, "index.html", f"<h1>{marker}</h1>".encode())
    assert marker in fetch(deployment["url"]), deployment
    return deployment



def node_of(url: str) -> str:
    return url.split("//", 1)[1].rsplit(":", 1)[0]


def all_idle(stack: LiveStack) -> bool:
    found = slots(stack)
    return len(found) == POOL and all(s["status"] == "idle" for s in found)


# --- the live stack on the lab -----------------------------------------------------------
@pytest.fixture(scope="module")
def stack(swarm_lab: Lab) -> Iterator[LiveStack]:
    with LiveStack(
        instance=settings.PAAS_INSTANCE + "-swarm", port_base=settings.LIVE_PORT_BASE,
        sizes=f"nginx={POOL},apache=0,python=0,node=0",
        extra_env={"PAAS_ENGINE": "swarm", **swarm_lab.platform_env,
                   "PAAS_Q_TIMEOUT": "60", "PAAS_Q_RETRY": "70"},
    ) as live:
        yield live
    print(f"\n(live stack logs: {live.data_dir}/{{web,worker}}.log)")


@pytest.fixture
def users(stack: LiveStack) -> Iterator[Callable[[str], LiveUser]]:
    """Users of the stack; their deployments are released afterwards and the pool is
    back to idle before the next test."""
    made: list[LiveUser] = []

    def make(name: str) -> LiveUser:
        made.append(LiveUser(stack, name))
        return made[-1]

    yield make
    for user in made:
        for deployment in user.api("GET", "", 200):
            if deployment["status"] != "released":
                user.api("DELETE", f"{deployment['id']}/", 204)
    wait_for("every slot idle again", lambda: all_idle(stack), timeout=120)


def test_slots_spread_and_every_node_serves_its_users(
        stack: LiveStack, swarm_lab: Lab, users: Callable[[str], LiveUser]) -> None:
    wait_for("the pool warm", lambda: all_idle(stack), timeout=120)
    assert {s["node_addr"] for s in slots(stack)} == set(swarm_lab.addrs), slots(stack)
    sites = [(user, site(user, f"{user_name} site {i}"), f"{user_name} site {i}")
             for user_name in ("ann", "ben") for user in [users(user_name)] for i in range(3)]
    assert {node_of(d["url"]) for _, d, _ in sites} == set(swarm_lab.addrs)
    by_node = {node_of(d["url"]): (u, d, m) for u, d, m in sites}
    for user, deployment, marker in by_node.values():
        logs = user.api("GET", f"{deployment['id']}/logs/?tail=20", 200)
        assert "GET / HTTP" in str(logs), logs
        assert user.api("POST", f"{deployment['id']}/restart/", 202)["restarted"] is True
        wait_for("serving after restart", partial(serves, deployment["url"], marker),
                 timeout=15)
        user.api("DELETE", f"{deployment['id']}/", 204)
        assert user.show(deployment)["status"] == "released"
    # A released slot is a fresh service: the next user sees no previous files.
    released = {d["port"] for _, d, _ in by_node.values()}
    wait_for("released slots idle again", lambda: all(
        s["status"] == "idle" for s in slots(stack) if s["port"] in released), timeout=120)
    for slot in slots(stack):
        if slot["port"] in released:
            page = fetch(f"http://{slot['node_addr']}:{slot['port']}/")
            assert page and not any(marker in page for _, _, marker in sites), page[:200]


def moved_and_serving(user: LiveUser, deployment: dict, marker: str, away_from: str) -> bool:
    shown = user.show(deployment)
    return (shown["status"] == "running" and node_of(shown["url"]) != away_from
            and marker in fetch(shown["url"]))


def test_draining_a_node_moves_its_slots_with_their_files(
        stack: LiveStack, swarm_lab: Lab, users: Callable[[str], LiveUser]) -> None:
    wait_for("the pool warm", lambda: all_idle(stack), timeout=120)
    dora = users("dora")
    dan = users("dan")
    sites = [(u, site(u, f"{u_name} page {i}"), f"{u_name} page {i}")
             for u_name, u in (("dora", dora), ("dan", dan)) for i in range(3)]
    drained = swarm_lab.addrs[1]  # node 2 (node 1 is the only manager)
    on_it = [(u, d, m) for u, d, m in sites if node_of(d["url"]) == drained]
    assert on_it, "no deployment on node 2"
    node_id = swarm_lab.node_id(drained)
    started = time.monotonic()
    swarm_lab.manager("node", "update", "--availability", "drain", node_id)
    try:
        for user, deployment, marker in on_it:
            wait_for(f"{marker!r} served from another node",
                     partial(moved_and_serving, user, deployment, marker, drained),
                     timeout=90, interval=0.1)
        print(f"\nMETRIC drain -> {len(on_it)} slots serving their files elsewhere: "
              f"{time.monotonic() - started:.1f} s")
        for user, deployment, marker in sites:
            if (user, deployment, marker) in on_it:
                continue
            shown = user.show(deployment)  # the others never moved
            assert shown["url"] == deployment["url"] and shown["last_recovery"] is None
            assert marker in fetch(shown["url"])
    finally:
        swarm_lab.manager("node", "update", "--availability", "active", node_id)


def test_a_lost_node_costs_seconds_and_no_files(
        stack: LiveStack, swarm_lab: Lab, users: Callable[[str], LiveUser]) -> None:
    wait_for("the pool warm", lambda: all_idle(stack), timeout=120)
    lena, leo = users("lena"), users("leo")
    sites = [(u, site(u, f"{u_name} file {i}"), f"{u_name} file {i}")
             for u_name, u in (("lena", lena), ("leo", leo)) for i in range(3)]
    lost = swarm_lab.addrs[2]  # node 3
    on_it = [(u, d, m) for u, d, m in sites if node_of(d["url"]) == lost]
    assert on_it, "no deployment on node 3"
    started = time.monotonic()
    swarm_lab.script("stop", swarm_lab.id, str(swarm_lab.node_number(lost)))
    for user, deployment, marker in on_it:
        wait_for(f"{marker!r} served from another node",
                 partial(moved_and_serving, user, deployment, marker, lost),
                 timeout=90, interval=0.1)
    print(f"\nMETRIC node down -> {len(on_it)} slots serving their files elsewhere: "
          f"{time.monotonic() - started:.1f} s")
    for user, deployment, _ in on_it:
        recovery = user.show(deployment)["last_recovery"]
        assert recovery and recovery["outcome"] == "succeeded", recovery
    for user, deployment, marker in sites:
        assert marker in fetch(user.show(deployment)["url"])
    # The node comes back: its engine stops the old containers, and no slot has two.
    swarm_lab.script("start", swarm_lab.id, str(swarm_lab.node_number(lost)))
    wait_for("every slot has one running container",
             partial(one_container_per_slot, swarm_lab, stack.instance), timeout=60)
    for user, deployment, marker in sites:
        assert marker in fetch(user.show(deployment)["url"])


def one_container_per_slot(lab: Lab, instance: str) -> bool:
    """Running containers of the instance on all nodes, at most one per slot."""
    seen: list[str] = []
    for addr in lab.addrs:
        out = subprocess.run(
            ["docker", "-H", lab.node_socket(addr), "ps", "--filter",
             f"label=paas.instance={instance}", "--format", '{{.Label "paas.slot"}}'],
            capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return False  # the node is not answering yet
        seen += out.stdout.split()
    return len(seen) == len(set(seen)) == POOL


def test_the_node_apis_admit_only_our_client_certificate(swarm_lab: Lab) -> None:
    """The platform is given tcp:// URLs only; each answers TLS with a server certificate
    of the lab's CA for its own address, and refuses a client without our certificate."""
    env = swarm_lab.platform_env
    urls = dict(pair.split("=", 1) for pair in env["PAAS_SWARM_NODES"].split(","))
    assert urls == {addr: f"tcp://{addr}:2376" for addr in swarm_lab.addrs}
    assert "unix://" not in " ".join(v for k, v in env.items() if k != "PAAS_SWARM_MANAGER")
    tls = env["PAAS_SWARM_TLS_DIR"]
    for addr in swarm_lab.addrs:
        url = f"https://{addr}:2376/version"
        ours = requests.get(url, verify=f"{tls}/ca.pem", timeout=10,
                            cert=(f"{tls}/cert.pem", f"{tls}/key.pem"))
        assert ours.status_code == 200 and ours.json()["ApiVersion"], ours.text
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, verify=f"{tls}/ca.pem", timeout=10)  # no client certificate
        plain = requests.get(f"http://{addr}:2376/version", timeout=10)
        assert plain.status_code == 400 and "HTTPS" in plain.text, plain.text  # TLS only


def recoveries(stack: LiveStack, slot_id: int) -> list[dict]:
    db = sqlite3.connect(f"file:{stack.data_dir / 'paas.sqlite3'}?mode=ro", uri=True,
                         timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(
            "SELECT trigger, outcome, reason FROM pools_recovery WHERE slot_id = ? "
            "ORDER BY started_at", (slot_id,))]
    finally:
        db.close()


def test_a_container_killed_on_its_node_is_noticed_by_that_nodes_events(
        stack: LiveStack, swarm_lab: Lab, users: Callable[[str], LiveUser]) -> None:
    """The watcher follows each node's container events: the kill is noticed by the
    node's own ``die`` (trigger "watch-node"), not by the manager's task poll ("watch")
    nor the reconcile pass; the user's files are served again."""
    wait_for("the pool warm", lambda: all_idle(stack), timeout=120)
    kim = users("kim")
    deployment = site(kim, "kim's page")
    node = node_of(deployment["url"])
    slot = next(s for s in slots(stack) if s["port"] == deployment["port"])
    container = subprocess.run(
        ["docker", "-H", swarm_lab.node_socket(node), "ps", "-q", "--filter",
         f"label=com.docker.swarm.service.id={slot['container_id']}"],
        check=True, capture_output=True, text=True, timeout=30).stdout.split()
    assert len(container) == 1, container
    before = len(recoveries(stack, slot["id"]))  # the slot may have moved in a test before
    started = time.monotonic()
    subprocess.run(["docker", "-H", swarm_lab.node_socket(node), "kill", container[0]],
                   check=True, capture_output=True, timeout=30)
    wait_for("kim's page served again", lambda: kim.show(deployment)["status"] == "running"
             and (kim.show(deployment)["last_recovery"] or {}).get("outcome") == "succeeded"
             and serves(kim.show(deployment)["url"], "kim's page"), timeout=90, interval=0.1)
    print(f"\nMETRIC container killed on node {swarm_lab.node_number(node)} -> serving "
          f"again: {time.monotonic() - started:.1f} s")
    found = recoveries(stack, slot["id"])[before:]
    assert [r["trigger"] for r in found] == ["watch-node"], found


def node_docker(lab: Lab, addr: str, *args: str) -> str:
    return subprocess.run(["docker", "-H", lab.node_socket(addr), *args], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def test_a_slots_writable_space_is_bounded_and_its_volumes_go_with_it(
        stack: LiveStack, swarm_lab: Lab, users: Callable[[str], LiveUser]) -> None:
    """On a swarm too: a read-only root, and the content root a size-bounded tmpfs that
    uid 1000 owns (a tmpfs volume: Swarm's own tmpfs loses owner and mode on Debian's
    engine). Releasing the slot removes its volumes from the node."""
    wait_for("the pool warm", lambda: all_idle(stack), timeout=120)
    ivy = users("ivy")
    deployment = site(ivy, "ivy's page")
    node = node_of(deployment["url"])
    slot = next(s for s in slots(stack) if s["port"] == deployment["port"])
    [container] = node_docker(swarm_lab, node, "ps", "-q", "--filter",
                              f"label=com.docker.swarm.service.id={slot['container_id']}").split()
    db = sqlite3.connect(f"file:{stack.data_dir / 'paas.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        [(root,)] = db.execute("SELECT content_root FROM pools_runtime WHERE name = 'nginx'")
    finally:
        db.close()
    out = node_docker(swarm_lab, node, "exec", "-u", "1000", container, "sh", "-c",
                      f"stat -c %u {root}; dd if=/dev/zero of={root}/fill bs=1M count=2000 "
                      f"2>&1; rm -f {root}/fill; touch /etc/x 2>&1; true")
    assert out.splitlines()[0] == "1000", out
    assert "No space left on device" in out and "Read-only file system" in out, out
    own = node_docker(swarm_lab, node, "inspect", "-f",
                      "{{range .Mounts}}{{.Name}} {{end}}", container).split()
    assert len(own) == 4, own  # nginx: /run, the content root, /tmp, its body buffers
    ivy.api("DELETE", f"{deployment['id']}/", 204)
    wait_for("the released slot idle again", lambda: all_idle(stack), timeout=120)
    left = node_docker(swarm_lab, node, "volume", "ls", "-q", "--filter",
                       f"label=paas.instance={stack.instance}").split()
    assert not set(own) & set(left), (own, left)
    # The agent also makes an unmounted twin of each (pruned at removals on the node):
    # the node holds no more than two per mount of the containers that run there.
    running = node_docker(swarm_lab, node, "ps", "-q", "--filter",
                          f"label=paas.instance={stack.instance}").split()
    assert len(left) <= 2 * 4 * len(running), (left, running)

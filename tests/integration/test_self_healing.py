"""Self-healing on the real engine, each test a fault injected on purpose: a user's
container killed, removed or stopped (watcher path and reconcile path), a crash loop, an
orphan, a Docker daemon of the test's own restarted during passes, and a worker killed
mid-recovery.

The user-facing tests run against a live stack (gunicorn + django-q2 cluster + watcher as
real processes, their own instance label and ports); the crash-loop and orphan tests run
in-process on this run's own instance. ``pytest -s`` shows the measured times
(``METRIC`` lines)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from pools import monitor, services
from pools.engine import DockerEngine
from pools.imagebuild import build_images, image_tag
from pools.models import PoolContainer, Runtime, SlotStatus
from tests.integration.conftest import http_get, remove_instance_containers
from tests.lab import lab_script, running_lab
from tests.live import LiveStack, LiveUser

pytestmark = [pytest.mark.integration]
S = SlotStatus
HEAL_INSTANCE = settings.PAAS_INSTANCE + "-heal"
APP_PY = b"""\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"python app says hi"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
"""


# --- docker and the live stack's database ----------------------------------------
def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check).stdout.strip()


def slot_containers(instance: str, slot_id: int) -> list[str]:
    """Every container (running or not) carrying the slot's labels."""
    return docker("ps", "-aq", "--no-trunc", "--filter", f"label=paas.instance={instance}",
                  "--filter", f"label=paas.slot={slot_id}").split()


def only_container(instance: str, slot_id: int, container_id: str) -> bool:
    """The slot's one container is ``container_id``: the build removes the old one it
    stopped right after the slot settles, so this waits a moment for that."""
    wait_for(f"slot {slot_id}: only container {container_id[:12]} left",
             lambda: slot_containers(instance, slot_id) == [container_id], timeout=10,
             interval=0.05)
    return True


def container_running(container_id: str) -> bool:
    out = docker("inspect", "-f", "{{.State.Running}}", container_id, check=False)
    return out == "true"


def rows(stack: LiveStack, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict]:
    """Slots of the live stack, read straight from its SQLite file (read-only)."""
    db = sqlite3.connect(f"file:{stack.data_dir / 'paas.sqlite3'}?mode=ro", uri=True,
                         timeout=10)
    db.row_factory = sqlite3.Row
    try:
        cursor = db.execute(
            "SELECT s.id, s.port, s.status, s.generation, s.container_id, s.failures, "
            "s.last_error, s.healthy, s.built_at, r.name AS runtime "
            "FROM pools_poolcontainer s "
            f"JOIN pools_runtime r ON r.id = s.runtime_id WHERE {where} ORDER BY s.port",
            params)
        found = [dict(row) for row in cursor.fetchall()]
    finally:
        db.close()
    for row in found:  # stored as naive UTC text
        row["built_at"] = datetime.fromisoformat(row["built_at"] + "+00:00")
    return found


def slot_at(stack: LiveStack, port: int) -> dict:
    return rows(stack, "s.port = ?", (port,))[0]


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


def serving(port: int, marker: str) -> bool:
    status, body = http_get(port, timeout=0)
    return status == 200 and marker in body


def time_until_serving(port: int, marker: str, started: float, timeout: float) -> float:
    wait_for(f"port {port} serves {marker!r} again", lambda: serving(port, marker),
             timeout, interval=0.05)
    return time.monotonic() - started


def launch_site(stack: LiveStack, name: str, *, host: str = "127.0.0.1",
                ) -> tuple[LiveUser, dict, str]:
    """A user with an nginx deployment serving their own index.html (at ``host``)."""
    user = LiveUser(stack, name)
    deployment = user.launch("nginx")
    marker = f"{name}'s own page"
    user.upload(deployment, "index.html", f"<h1>{marker}</h1>".encode())
    assert http_get(deployment["port"], expect=marker, host=host)[1] == f"<h1>{marker}</h1>"
    return user, deployment, marker


def assert_recovered(user: LiveUser, deployment: dict) -> None:
    """What the user sees on their deployment: running, and when it was recovered."""
    def recovered() -> dict | None:
        shown = user.show(deployment)
        last = shown["last_recovery"]
        done = shown["status"] == "running" and last and last["outcome"] == "succeeded"
        return shown if done else None

    shown = wait_for("the deployment shows a finished recovery", recovered, timeout=15)
    assert shown["port"] == deployment["port"]
    assert shown["last_recovery"]["finished_at"]


# --- the live stack -----------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(docker_engine: DockerEngine) -> Iterator[LiveStack]:
    with LiveStack(
        instance=HEAL_INSTANCE, port_base=settings.LIVE_PORT_BASE,
        sizes="nginx=4,apache=0,python=1,node=0",
        extra_env={"PAAS_Q_TIMEOUT": "20", "PAAS_Q_RETRY": "25"},
    ) as live:
        yield live
    print(f"\n(live stack logs: {live.data_dir}/{{web,worker}}.log)")


@pytest.fixture
def watcher(stack: LiveStack) -> LiveStack:
    """The stack with its watcher running (restarted if an earlier test stopped it)."""
    stack.start_watcher()
    return stack


def test_killed_container_comes_back_by_the_watcher(watcher: LiveStack) -> None:
    user, deployment, marker = launch_site(watcher, "wendy")
    port = deployment["port"]
    before = slot_at(watcher, port)

    killed_at = time.monotonic()
    docker("kill", before["container_id"])
    seconds = time_until_serving(port, marker, killed_at, timeout=30)
    print(f"\nMETRIC kill -> serving again, watcher path: {seconds:.2f} s")

    assert_recovered(user, deployment)
    after = slot_at(watcher, port)
    assert after["status"] == S.ASSIGNED and after["container_id"] != before["container_id"]
    assert only_container(HEAL_INSTANCE, after["id"], after["container_id"])
    assert "recovery queued" in watcher.log("worker")


def test_killed_watcher_is_started_again_and_recovers_the_next_kill(
        watcher: LiveStack) -> None:
    """The watcher is the cluster's child (``pool cluster``): killed, its parent starts
    it again while the cluster runs on, and the new one does the watcher's work."""
    stack = watcher
    cluster = stack.procs["worker"]
    killed = stack.watcher_pid()
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    wait_for("a new watcher", lambda: stack.watcher_pid() not in (None, killed), timeout=15)
    stack.wait_watching()
    assert cluster.poll() is None and stack.procs["worker"] is cluster
    assert "watcher exited (status -9)" in stack.log("worker")

    user, deployment, marker = launch_site(stack, "walt")
    before = slot_at(stack, deployment["port"])
    docker("kill", before["container_id"])
    time_until_serving(deployment["port"], marker, time.monotonic(), timeout=30)
    assert_recovered(user, deployment)
    assert f"slot {before['id']} (nginx:{before['port']}): container die; recovery queued" \
        in stack.log("worker")
    user.api("DELETE", f"{deployment['id']}/", 204)  # the later tests want the slot


def test_killed_container_comes_back_by_the_reconcile_pass(watcher: LiveStack) -> None:
    stack = watcher
    stack.stop_watcher()
    user, deployment, marker = launch_site(stack, "rita")
    port = deployment["port"]
    before = slot_at(stack, port)

    killed_at = time.monotonic()
    docker("kill", before["container_id"])
    time.sleep(1.0)  # nobody is watching: it stays down
    assert not serving(port, marker)
    assert slot_at(stack, port)["status"] == S.ASSIGNED
    result = stack.manage("pool", "reconcile")
    summary = json.loads(result.stdout)
    # One pass at a time: the command waits for a scheduled pass that may be running,
    # and that pass may be the one that recovered the slot (the watcher is stopped).
    by_a_pass = slot_at(stack, port)["generation"] > before["generation"]
    assert summary["ok"] and (before["id"] in summary["recovered"] or by_a_pass), result.stdout
    seconds = time_until_serving(port, marker, killed_at, timeout=30)
    print(f"\nMETRIC kill -> serving again, reconcile pass (started 1 s after the kill, "
          f"command start-up included): {seconds:.2f} s")

    assert_recovered(user, deployment)
    after = slot_at(stack, port)
    assert only_container(HEAL_INSTANCE, after["id"], after["container_id"])
    stack.start_watcher()


def test_removed_app_container_comes_back_with_the_app(watcher: LiveStack,
                                                       docker_engine: DockerEngine) -> None:
    user = LiveUser(watcher, "paula")
    deployment = user.launch("python")
    port = deployment["port"]
    user.upload(deployment, "app.py", APP_PY)
    assert http_get(port, expect="python app says hi", timeout=30)[1] == "python app says hi"
    before = slot_at(watcher, port)

    removed_at = time.monotonic()
    docker("rm", "-f", before["container_id"])
    seconds = time_until_serving(port, "python app says hi", removed_at, timeout=60)
    print(f"\nMETRIC docker rm -f -> app answering again (python): {seconds:.2f} s")

    assert_recovered(user, deployment)
    after = slot_at(watcher, port)
    assert after["container_id"] != before["container_id"]
    assert only_container(HEAL_INSTANCE, after["id"], after["container_id"])


def test_worker_killed_mid_recovery_task_runs_again(watcher: LiveStack) -> None:
    stack = watcher
    stack.stop_process("worker")
    stack.env["PAAS_FAULT_REBUILD_PAUSE"] = "6"  # the rebuild waits after its create
    stack.start_cluster("worker")
    try:
        user, deployment, marker = launch_site(stack, "kasia")
        port = deployment["port"]
        before = slot_at(stack, port)

        docker("kill", before["container_id"])
        # Mid-task: the slot is recovering and the new generation's container exists.
        new_generation = before["generation"] + 1
        wait_for("the recovery task created its container", lambda: (
            slot_at(stack, port)["status"] == S.RECOVERING and docker(
                "ps", "-aq", "--filter", f"label=paas.instance={HEAL_INSTANCE}",
                "--filter", f"label=paas.slot={before['id']}",
                "--filter", f"label=paas.generation={new_generation}")), timeout=20)
        stack.stop_process("worker", signal.SIGKILL)  # the whole cluster, mid-task
        killed_at = time.monotonic()
        assert slot_at(stack, port)["status"] == S.RECOVERING
    finally:
        stack.stop_process("worker", signal.SIGKILL)  # gone already, unless we failed
        stack.env["PAAS_FAULT_REBUILD_PAUSE"] = "0"
        stack.start_cluster("worker")

    # django-q2 hands the task out again once its lock (PAAS_Q_RETRY = 25 s) expires.
    seconds = time_until_serving(port, marker, killed_at, timeout=60)
    print(f"\nMETRIC worker SIGKILLed mid-recovery -> serving again: {seconds:.2f} s "
          "(Q retry 25 s)")
    after = slot_at(stack, port)
    # Same generation: the re-delivered task finished the job (a retry by the reconcile
    # pass would have bumped the generation, and only after stuck_seconds(): 50 s here).
    assert after["status"] == S.ASSIGNED and after["generation"] == new_generation
    assert only_container(HEAL_INSTANCE, after["id"], after["container_id"])
    assert container_running(after["container_id"])
    assert_recovered(user, deployment)
    handed_out = re.findall(r"processing (\S+) 'pools.tasks.slot_rebuild'", stack.log("worker"))
    assert any(handed_out.count(task) > 1 for task in handed_out), "not re-delivered"


def test_stopped_idle_container_is_replaced(watcher: LiveStack) -> None:
    idle = rows(watcher, "r.name = 'nginx' AND s.status = 'idle'")
    assert idle, rows(watcher)
    victim = idle[0]
    # A container that dies within STABLE_SECONDS of its build counts as a crash loop
    # (back-off); this one is meant to be a healthy container that got stopped.
    age = (timezone.now() - victim["built_at"]).total_seconds()
    time.sleep(max(0.0, services.STABLE_SECONDS + 1 - age))

    def replaced_and_idle() -> dict | None:
        row = slot_at(watcher, victim["port"])
        fresh = row["status"] == S.IDLE and row["container_id"] != victim["container_id"]
        return row if fresh else None

    docker("stop", victim["container_id"])
    replaced = wait_for("the idle slot has a new container", replaced_and_idle, timeout=30)
    assert container_running(replaced["container_id"])
    assert http_get(victim["port"], expect="ready")[0] == 200
    assert only_container(HEAL_INSTANCE, victim["id"], replaced["container_id"])
    assert len(rows(watcher, "r.name = 'nginx' AND s.status = 'idle'")) == len(idle)


# --- the daemon restarted during passes ---------------------------------------------
@dataclass
class OwnEngine:
    """A dockerd of this test's own (``swarm-lab.sh engine``): restarting it disturbs no
    one else's runs, as restarting the host's engine would."""
    lab: str
    docker_host: str  # its unix socket
    addr: str  # its network namespace's address: where its published ports are reached

    def restart(self) -> float:
        """SIGTERM to its dockerd (its own pid file) and start it again, as a service
        manager does; returns how long it was away."""
        started = time.monotonic()
        before, after = lab_script("restart", self.lab, "1").split()
        assert before != after and not Path(f"/proc/{before}").exists(), (before, after)
        wait_for("docker info answers again", _docker_answers, 90, interval=0.5)
        return time.monotonic() - started


@pytest.fixture
def own_engine(docker_engine: DockerEngine) -> Iterator[OwnEngine]:
    """Its dockerd runs with --live-restore and holds only the nginx image."""
    tags = build_images(docker_engine, runtimes=["nginx"], prune=False,
                        progress=lambda line: None)
    lab_id = f"{os.getpid() % 100000:05d}e"
    with running_lab(lab_id, "engine", *tags.values()) as env:
        yield OwnEngine(lab=lab_id, docker_host=env["PAAS_SWARM_MANAGER"],
                        addr=env["PAAS_SWARM_NODE_ADDRS"])


@pytest.fixture
def own_stack(own_engine: OwnEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveStack]:
    """A live stack (watcher included) on that engine. Its containers publish on every
    address of the engine's namespace and are reached (probes, this test) at its address."""
    monkeypatch.setenv("DOCKER_HOST", own_engine.docker_host)  # this test's docker looks
    with LiveStack(
        instance=HEAL_INSTANCE + "-own", port_base=settings.LIVE_PORT_BASE,
        sizes="nginx=4,apache=0,python=0,node=0",
        extra_env={"DOCKER_HOST": own_engine.docker_host, "PAAS_BIND_IP": "0.0.0.0",
                   "PAAS_PROBE_HOST": own_engine.addr, "PAAS_PUBLIC_HOST": own_engine.addr,
                   "PAAS_Q_TIMEOUT": "20", "PAAS_Q_RETRY": "25"},
    ) as live:
        yield live
    print(f"\n(live stack logs: {live.data_dir}/{{web,worker}}.log)")


def _docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def test_daemon_restart_during_passes_replaces_nothing_and_converges(
        own_engine: OwnEngine, own_stack: LiveStack) -> None:
    stack = own_stack
    host = own_engine.addr
    user, deployment, marker = launch_site(stack, "dora", host=host)
    sites = {deployment["port"]: marker}
    before = {row["id"]: row for row in rows(stack)}
    assert all(row["status"] in (S.IDLE, S.ASSIGNED) for row in before.values()), before
    watcher_before = stack.watcher_pid()

    passes: list[subprocess.CompletedProcess[str]] = []
    stop = threading.Event()

    def keep_passing() -> None:
        while not stop.is_set():
            passes.append(stack.manage("pool", "reconcile", check=False))

    runner = threading.Thread(target=keep_passing, daemon=True)
    runner.start()
    try:
        time.sleep(1.0)  # a pass is under way
        away = own_engine.restart()
        print(f"\nMETRIC dockerd restart (stop + start + docker info): {away:.1f} s")
        time.sleep(3.0)  # more passes against the restarted daemon
    finally:
        stop.set()
        runner.join(timeout=60)
    assert _docker_answers(), "dockerd must be left running"
    failed = [p for p in passes if p.returncode != 0]
    print(f"METRIC passes during the restart: {len(passes)}, refused/aborted: {len(failed)}")

    # Live-restore kept the containers: nothing should have been replaced.
    final = stack.manage("pool", "reconcile")
    assert json.loads(final.stdout)["ok"], final.stdout
    wait_for("every slot settled", lambda: all(
        row["status"] in (S.IDLE, S.ASSIGNED) for row in rows(stack)), timeout=30)
    after = {row["id"]: row for row in rows(stack)}
    assert after.keys() == before.keys()
    replaced = [slot_id for slot_id in after
                if (after[slot_id]["generation"], after[slot_id]["container_id"])
                != (before[slot_id]["generation"], before[slot_id]["container_id"])]
    print(f"METRIC slots replaced across the restart: {replaced}")
    for slot_id, row in after.items():
        assert only_container(stack.instance, slot_id, row["container_id"]), row
        assert container_running(row["container_id"]), row
    assert replaced == [], [(after[i], before[i]) for i in replaced]
    for port, text in sites.items():
        assert http_get(port, expect=text, host=host)[0] == 200
    assert stack.watcher_pid() == watcher_before, "the watcher died with the daemon"
    assert stack.procs["worker"].poll() is None
    stack.wait_http("/healthz", timeout=30)
    assert user.show(deployment)["status"] == "running"


# --- in-process: crash loop and orphans (this run's own instance) -----------------------
@pytest.fixture
def crashing_image(docker_engine: DockerEngine) -> Iterator[str]:
    """The nginx runtime image with a command that exits at once."""
    tag = f"paas-test/crash:{settings.PAAS_INSTANCE}"
    with tempfile.TemporaryDirectory() as work:
        Path(work, "Dockerfile").write_text(f'FROM {image_tag("nginx")}\nCMD ["false"]\n')
        docker_engine.build_image(Path(work), tag, {}, progress=lambda line: None)
    yield tag
    remove_instance_containers(docker_engine, settings.PAAS_INSTANCE)
    docker("rmi", "-f", tag, check=False)


@pytest.mark.django_db(transaction=True)
def test_crash_loop_backs_off_and_ends_failed_without_churn(
        warm_pools: Callable, crashing_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "READY_TIMEOUT", 3.0)
    Runtime.objects.filter(name="nginx").update(image=crashing_image)
    slot = warm_pools(nginx=1)["nginx"][0]
    assert slot.status == S.PROVISIONING and slot.failures == 1 and slot.retry_after

    assert monitor.reconcile_pass()["retried"] == []  # backing off: nothing happens yet
    assert PoolContainer.objects.get(pk=slot.pk).generation == slot.generation
    for _round in range(3 * services.MAX_FAILURES):
        PoolContainer.objects.filter(pk=slot.pk, retry_after__isnull=False).update(
            retry_after=timezone.now() - timedelta(seconds=1))  # the back-off elapsed
        monitor.reconcile_pass()
        if PoolContainer.objects.get(pk=slot.pk).status == S.FAILED:
            break
    final = PoolContainer.objects.get(pk=slot.pk)
    assert final.status == S.FAILED, (final.status, final.failures, final.last_error)
    assert final.last_error, "failed without a reason"
    print(f"\nMETRIC crash loop: failed after {final.generation} containers: "
          f"{final.last_error!r}")
    # Every container ever made for the slot had its own generation: bounded.
    assert final.generation <= services.MAX_FAILURES + 1
    assert len(slot_containers(settings.PAAS_INSTANCE, slot.pk)) <= 1

    for _round in range(2):  # failed is final: no churn
        PoolContainer.objects.filter(pk=slot.pk).update(
            retry_after=timezone.now() - timedelta(seconds=1))
        assert monitor.reconcile_pass()["ok"]
    again = PoolContainer.objects.get(pk=slot.pk)
    assert (again.status, again.generation) == (S.FAILED, final.generation)
    assert len(slot_containers(settings.PAAS_INSTANCE, slot.pk)) <= 1


@pytest.mark.django_db(transaction=True)
def test_orphan_is_removed_but_foreign_and_unlabelled_containers_are_not(
        warm_pools: Callable) -> None:
    slot = warm_pools(nginx=1)["nginx"][0]
    image = image_tag("nginx")

    def run(*labels: str) -> str:
        flags = [arg for label in labels for arg in ("--label", label)]
        return docker("run", "-d", *flags, image)

    orphan = run(f"paas.instance={settings.PAAS_INSTANCE}", "paas.slot=999999")
    foreign = run(f"paas.instance={settings.PAAS_INSTANCE}-someone-else", "paas.slot=999999")
    plain = run()
    try:
        result = monitor.reconcile_pass()
        assert result["ok"] and result["orphans_removed"] == 1, result
        assert docker("ps", "-aq", "--filter", f"id={orphan}") == ""
        assert container_running(foreign) and container_running(plain)
        fresh = PoolContainer.objects.get(pk=slot.pk)
        assert fresh.container_id == slot.container_id and container_running(slot.container_id)
    finally:
        docker("rm", "-f", orphan, foreign, plain, check=False)

"""Bounded resources on the real engine: a user's app cannot fill the host's disk (the
container's root is read-only and every place it may write is a size-limited tmpfs),
and the out-of-memory kill of one child process does not cost the user their container."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser

from deployments import services as deployments
from pools import monitor
from pools.engine import DockerEngine
from pools.models import PoolContainer, Recovery
from pools.runtimes import writable_mounts

pytestmark = pytest.mark.integration
MB = 1 << 20

# Writes 2 GB (in 1 MB chunks) to each place a user's app might try, and reports how far
# it got and why it stopped.
FILLER = b'''
import errno, os, time
chunk = b"x" * (1 << 20)
for place in ["/tmp", "/app", "/home/paas", "/opt/venv", "/dev/shm", "/var/tmp", "/"]:
    written, error = 0, "none"
    try:
        with open(os.path.join(place, "fill.bin"), "wb", buffering=0) as out:
            while written < 2048:
                out.write(chunk)
                written += 1
    except OSError as exc:
        error = errno.errorcode.get(exc.errno, str(exc.errno))
    print(f"FILL {place} {written} {error}", flush=True)
print("FILL done", flush=True)
time.sleep(3600)
'''

# A child process that allocates until the kernel kills it; the app itself lives on.
CHILD_HOG = b'''
import subprocess, sys, time
hog = "chunks = []\\nwhile True:\\n    chunks.append(b'x' * (16 << 20))\\n"
child = subprocess.run([sys.executable, "-c", hog])
print(f"HOG child exited with {child.returncode}", flush=True)
time.sleep(3600)
'''


def wait_for_log(engine: DockerEngine, container_id: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        logs = engine.logs(container_id, tail=300)
        if text in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)


def docker_root_free() -> int:
    root = subprocess.run(["docker", "info", "-f", "{{.DockerRootDir}}"], capture_output=True,
                          text=True, check=True).stdout.strip()
    return shutil.disk_usage(root).free


def writable_layer_size(container_id: str) -> int:
    out = subprocess.run(["docker", "inspect", "--size", "-f", "{{.SizeRw}}", container_id],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def launch_app(alice: AbstractUser, code: bytes) -> PoolContainer:
    deployment = deployments.deployment_create(user=alice, runtime_name="python")
    deployments.deployment_upload(deployment=deployment, uploads=[("app.py", io.BytesIO(code))])
    return PoolContainer.objects.get(pk=deployment.slot_id)


def test_app_writing_2gb_is_stopped_at_the_bound_and_the_host_keeps_its_space(
        warm_pools: Callable, real_engine: DockerEngine, alice: AbstractUser) -> None:
    warm_pools(python=1)
    free_before = docker_root_free()
    slot = launch_app(alice, FILLER)
    logs = wait_for_log(real_engine, slot.container_id, "FILL done", timeout=120)
    free_after = docker_root_free()
    filled = {place: (int(mb), why) for place, mb, why in
              re.findall(r"^FILL (\S+) (\d+) (\w+)$", logs, re.MULTILINE)}
    print(f"\nwrites per place (MB, why it stopped): {filled}\n"
          f"free on the Docker root: {free_before / MB:.0f} MB before, "
          f"{free_after / MB:.0f} MB after")

    bounds = {path: int(re.search(r"size=(\d+)m", options)[1])  # type: ignore[index]
              for path, options in writable_mounts(
                  runtime_name="python", content_root="/app",
                  size_mb=settings.PAAS_CONTAINER_DISK_MB).items()}
    for place in ["/tmp", "/app", "/home/paas", "/opt/venv"]:
        written, why = filled[place]
        assert why == "ENOSPC" and bounds[place] - 2 <= written <= bounds[place], place
    assert filled["/dev/shm"][1] == "ENOSPC" and filled["/dev/shm"][0] <= 64  # Docker's size
    assert filled["/var/tmp"] == (0, "EROFS") and filled["/"] == (0, "EROFS")
    # Nothing reached the host's disk: the image layer stayed empty, the free space did
    # not shrink by the ~8 GB the app tried to write (other work on this host may move
    # it by a little).
    assert writable_layer_size(slot.container_id) < MB
    assert free_before - free_after < 300 * MB
    # The app hit its bound, not a limit of the container: nothing to recover.
    info = real_engine.inspect(slot.container_id)
    assert info is not None and info.running
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert (fresh.container_id, fresh.generation) == (slot.container_id, slot.generation)


def test_oom_kill_of_a_child_process_keeps_the_container_and_the_slot(
        warm_pools: Callable, real_engine: DockerEngine, alice: AbstractUser) -> None:
    warm_pools(python=1)
    since = time.time() - 1
    slot = launch_app(alice, CHILD_HOG)
    logs = wait_for_log(real_engine, slot.container_id, "HOG child exited", timeout=120)
    assert "HOG child exited with -9" in logs  # SIGKILL from the kernel's OOM killer
    events = oom_events(slot.container_id, since=since, timeout=10)
    if not events:
        # Docker's oom event comes from containerd's watch on the memory cgroup, and this
        # shared host has been seen to stop delivering it (none even for a killed PID 1).
        # The watcher would get exactly this: the container's id and labels.
        print("\nDocker sent no oom event; handing the watcher the one it would get")
        events = [{"id": slot.container_id, "Actor": {"Attributes": container_labels(
            slot.container_id)}}]
    for event in events:  # what the watcher does with each
        assert not monitor.handle_event(event["id"], "oom", event["Actor"]["Attributes"],
                                        say=lambda line: None)
    info = real_engine.inspect(slot.container_id)
    assert info is not None and info.running
    fresh = PoolContainer.objects.get(pk=slot.pk)
    assert (fresh.status, fresh.container_id, fresh.generation) == (
        "assigned", slot.container_id, slot.generation)
    assert not Recovery.objects.filter(slot_id=slot.pk).exists()


def container_labels(container_id: str) -> dict[str, str]:
    out = subprocess.run(["docker", "inspect", "-f", "{{json .Config.Labels}}", container_id],
                         capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def oom_events(container_id: str, *, since: float, timeout: float) -> list[dict]:
    """Docker's oom events of the container so far (``--until`` ends the stream)."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["docker", "events", "--since", f"{since:.0f}", "--until", f"{time.time():.0f}",
             "--filter", f"container={container_id}", "--filter", "event=oom",
             "--format", "{{json .}}"],
            capture_output=True, text=True, check=True).stdout
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(1)

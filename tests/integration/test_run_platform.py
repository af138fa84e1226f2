"""`make run`'s script for real: started as from a terminal, stopped with Ctrl-C (SIGINT
to its process group, which is what the terminal sends). Web, cluster and watcher stop
once, cleanly and soon: no traceback, no process left, no SIGKILL."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.live import ROOT, free_port, port_ranges, remove_instance

pytestmark = pytest.mark.integration
STOP_SECONDS = 10  # the script's own safety net (SIGKILL) is at PAAS_STOP_TIMEOUT=30


def processes_of(instance: str) -> set[int]:
    """Every process running with our PAAS_INSTANCE: the script's children and theirs."""
    marker = f"PAAS_INSTANCE={instance}\0".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
    return found


class Platform:
    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"paas-{instance}-"))
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "PAAS_DATABASE_URL"},
            "DJANGO_SETTINGS_MODULE": "paas_project.settings",
            "PAAS_INSTANCE": instance,
            "PAAS_DATA_DIR": str(self.data_dir),
            "PAAS_PORT": str(self.port),
            "PAAS_PORT_RANGES": port_ranges(settings.LIVE_PORT_BASE),
            "PAAS_POOL_SIZES": "nginx=1,apache=0,python=0,node=0",
            "PAAS_BIND_IP": "127.0.0.1",
            "PAAS_SKIP_IMAGE_BUILD": "1",  # the session built them, without pruning
            "PAAS_ADMIN_PASSWORD": "a-long-Passphrase-1",
            "PAAS_WEB_WORKERS": "1",
            "PAAS_WEB_THREADS": "2",
            "PAAS_STOP_TIMEOUT": "30",
        }
        self.output = self.data_dir / "output.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.output, "wb") as out:
            # Its own session, like a terminal's foreground job: killpg reaches exactly
            # the processes Ctrl-C would.
            self.proc = subprocess.Popen(
                [str(ROOT / "infrastructure/scripts/run-platform.sh")], cwd=ROOT,
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_until_serving(timeout=180)

    def wait_until_serving(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()[-3000:]
            log = self.log()
            if (self.answers("/healthz") and "watching Docker events" in log
                    and re.search(r"Q Cluster .* running\.", log)):
                return
            time.sleep(0.5)
        raise AssertionError("the platform did not come up:\n" + self.log()[-3000:])

    def answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def clean_up(self) -> None:
        for pid in processes_of(self.instance):  # only what this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_instance(self.instance)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def platform() -> Iterator[Platform]:
    running = Platform(f"{settings.PAAS_INSTANCE}-run")
    try:
        yield running
    finally:
        running.clean_up()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_to_the_group_stops_web_cluster_and_watcher_once_cleanly(
        platform: Platform, signum: int) -> None:
    platform.start()
    assert platform.proc is not None
    members = processes_of(platform.instance)
    assert len(members) >= 5  # script, cluster (and its workers), watcher, gunicorn + worker

    started = time.monotonic()
    os.killpg(platform.proc.pid, signum)  # Ctrl-C sends SIGINT to the foreground group
    try:
        platform.proc.wait(timeout=45)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the platform did not stop on {signal.Signals(signum).name}:\n"
                    + platform.log()[-3000:])
    took = time.monotonic() - started
    while processes_of(platform.instance) and time.monotonic() - started < STOP_SECONDS:
        time.sleep(0.1)
    left = processes_of(platform.instance)
    log = platform.log()
    stopping = log[log.find("stopping platform"):]
    print(f"\nstopped in {took:.1f} s; output after the signal:\n{stopping}")

    assert platform.proc.returncode == 0 and took < STOP_SECONDS, log[-3000:]
    assert not left, f"still running: {left}"
    assert stopping.count("stopping platform") == 1 and "Traceback" not in stopping
    assert "killing process groups" not in stopping  # the SIGKILL safety net was not needed
    assert "watcher stopped" in stopping and "has stopped" in stopping  # the cluster's word
    assert stopping.rstrip().endswith("platform stopped")

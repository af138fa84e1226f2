"""Task dispatch without the broker's poll: a real ``qcluster`` process whose poll is
set far longer than the test waits must still run a task the moment it is queued (the
wake-up of ``paas_project/task_broker.py``). Queued from another process, as the web
and the watcher do."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import ROOT, _inherited_env

pytestmark = [pytest.mark.integration]
POLL = 60.0  # a task that waited for the poll would miss every deadline below


@pytest.fixture
def cluster() -> Iterator[dict[str, str]]:
    data_dir = Path(tempfile.mkdtemp(prefix="paas-wake-"))
    env = {**_inherited_env(), "DJANGO_SETTINGS_MODULE": "paas_project.settings",
           "PAAS_DATA_DIR": str(data_dir), "PAAS_INSTANCE": f"wake-{data_dir.name}",
           "PAAS_Q_POLL": str(POLL), "PAAS_Q_WORKERS": "1", "PAAS_TASKS_INLINE": "false"}
    manage(env, "migrate", "--noinput")
    log = open(data_dir / "qcluster.log", "ab")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield env
    finally:
        # Killed, not stopped: a pusher asleep on this long poll would hold a clean stop
        # for that long (at the default poll of 0.2 s a stop is as quick as before).
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout


def successes(env: dict[str, str]) -> list[str]:
    db = sqlite3.connect(f"file:{env['PAAS_DATA_DIR']}/paas.sqlite3?mode=ro", uri=True,
                         timeout=10)
    try:
        return [row[0] for row in db.execute(
            "SELECT name FROM django_q_task WHERE success = 1")]
    finally:
        db.close()


def wait_for(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_a_queued_task_runs_without_waiting_for_the_poll(cluster: dict[str, str]) -> None:
    log = Path(cluster["PAAS_DATA_DIR"]) / "qcluster.log"
    assert wait_for(lambda: "pushing tasks at" in log.read_text(errors="replace"), 60), (
        "the cluster did not start")
    time.sleep(1.0)  # its first look at the (empty) queue is over: it sleeps on the poll
    for name in ("first", "second"):  # the second proves the wake-up works again
        manage(cluster, "shell", "-c",
               f"from django_q.tasks import async_task; async_task('math.floor', 2.5, "
               f"task_name='{name}')")
        assert wait_for(lambda name=name: name in successes(cluster), POLL / 3), (
            f"task {name} was not run before the {POLL:.0f} s poll")

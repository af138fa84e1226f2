"""The web process alone, for real over HTTP: gunicorn (gthread, two workers, as `make
run` starts it) on a fresh data dir and SQLite database, with its temporary files in a
folder of its own so a test can see what a request spools. No Docker is needed: these
tests drive the pages and the accounts API, not the pools."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paas_project.gunicorn_conf import worker_class as WORKER_CLASS
from tests.live import ROOT, free_port


class LiveWeb:
    def __init__(self, extra_env: dict[str, str] | None = None, workers: int = 2,
                 data_dir: Path | None = None) -> None:
        """``data_dir``: share another stack's data dir (and database)."""
        self.own_data_dir = data_dir is None  # removed by stop()
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="paas-http-"))
        self.port = free_port()
        self.tmp_dir = self.data_dir / f"tmp-{self.port}"
        self.tmp_dir.mkdir()
        self.workers = workers
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "paas_project.settings",
            "PAAS_INSTANCE": f"test-http-{os.getpid()}",
            "PAAS_DATA_DIR": str(self.data_dir),
            "TMPDIR": str(self.tmp_dir),  # where Django spools uploads
            "PAAS_CADDY_ADMIN": "",  # plain HTTP on its own port, no front door
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str) -> str:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, check=True).stdout

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        log = (self.data_dir / f"web-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "paas_project.wsgi:application",
             "--bind", f"127.0.0.1:{self.port}", "--worker-class", WORKER_CLASS,
             "--workers", str(self.workers), "--threads", "4"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while self.get("/login/")[0] != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("gunicorn did not start:\n" + self.log()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        if self.own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log(self) -> str:
        path = self.data_dir / f"web-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except OSError:
            return 0, {}, b""
        finally:
            conn.close()

    def tmp_bytes(self) -> int:
        """Bytes in the web process's temporary folder right now."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.tmp_dir):
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total


@pytest.fixture(scope="module")
def web() -> Iterator[LiveWeb]:
    stack = LiveWeb()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()

"""The live stack: gunicorn, the django-q2 cluster and the watcher as real processes,
started the way the platform runs them (the watcher a child of the first cluster,
``pool cluster``), with their own instance label, data dir, SQLite file and port
ranges. Used by the browser tests, the watcher fault tests and the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import requests

from pools.cluster import WATCHER_NAME

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_ranges(base: int, width: int = 50) -> str:
    names = ["nginx", "apache", "python", "node"]
    return ",".join(f"{n}={base + i * width}-{base + (i + 1) * width - 1}"
                    for i, n in enumerate(names))


def _inherited_env() -> dict[str, str]:
    """The environment a stack inherits: no ``PAAS_*`` setting of the caller's (it could
    name a live platform's database or data dir). A stack that should use a database
    server of the run's own gets it through ``extra_env``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAAS_")}


def remove_instance(instance: str, *, env: dict[str, str] | None = None,
                    wait: float = 20.0) -> None:
    """Remove every container labelled with ``instance``, then its network. A removal
    that a stopped cluster worker began may still be running (our ``rm -f`` is then
    refused) and keeps the network in use until it ends, so the network is tried again
    for up to ``wait`` seconds rather than left behind."""
    deadline = time.monotonic() + wait
    while True:
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=paas.instance={instance}"],
            capture_output=True, text=True, env=env).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, env=env)
        gone = subprocess.run(["docker", "network", "rm", f"paas-{instance}"],
                              capture_output=True, text=True, env=env)
        if (gone.returncode == 0 or "active endpoints" not in gone.stderr
                or time.monotonic() > deadline):
            return
        time.sleep(0.5)


class LiveStack:
    """``with LiveStack(instance, port_base, sizes) as stack: stack.url ...``"""

    def __init__(self, *, instance: str, port_base: int, sizes: str,
                 extra_env: dict[str, str] | None = None, watcher: bool = True,
                 web_workers: int = 2, cluster_processes: int = 1,
                 data_dir: Path | None = None) -> None:
        self.instance = instance
        self.own_data_dir = data_dir is None  # removed by a clean __exit__
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"paas-{instance}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.watcher = watcher
        self.web_workers = web_workers
        self.cluster_processes = cluster_processes
        self.env = {
            **_inherited_env(),
            "DJANGO_SETTINGS_MODULE": "paas_project.settings",
            "PAAS_INSTANCE": instance,
            "PAAS_DATA_DIR": str(self.data_dir),
            "PAAS_PORT_RANGES": port_ranges(port_base),
            "PAAS_POOL_SIZES": sizes,
            "PAAS_TASKS_INLINE": "false",
            "PAAS_BIND_IP": "127.0.0.1",
            "PAAS_PUBLIC_HOST": "127.0.0.1",
            "PAAS_MONITOR_INTERVAL": "60",
            "PAAS_AUTH_THROTTLE": "10000/min",
            "PAAS_SIGNUP_THROTTLE": "10000/min",  # test users all sign up from 127.0.0.1
            "PAAS_LOGIN_FAILURE_LIMIT": "50",
            "PAAS_CADDY_ADMIN": "",  # plain HTTP on the stack's port unless a test adds Caddy
            # Fixed pools and launches that never wait, which these stacks' tests count
            # on; an elastic stack passes PAAS_ELASTIC/PAAS_CLAIM_WAIT in extra_env.
            "PAAS_ELASTIC": "false",
            "PAAS_CLAIM_WAIT": "0",
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> LiveStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if self.own_data_dir and exc_type is None:  # kept (logs) when the block failed
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, check=check)

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        self.manage("pool", "init")
        # Several clusters (each with PAAS_Q_WORKERS workers) as on a production control
        # host: their logs are worker.log, worker2.log, ...; the watcher logs with the
        # first.
        for k in range(1, self.cluster_processes + 1):
            self.start_cluster("worker" if k == 1 else f"worker{k}", wait=False)
        self.start_process("web", [
            str(Path(sys.executable).parent / "gunicorn"), "paas_project.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--config", "python:paas_project.gunicorn_conf",
            "--workers", str(self.web_workers), "--threads", "8",
        ])
        self.wait_http("/healthz", timeout=30)
        if self.watcher:
            self.wait_watching()

    def start_cluster(self, name: str, *, wait: bool = True) -> None:
        """The first cluster runs the watcher as its child (``pool cluster``) unless the
        stack has none (``wait``: until it watches); more clusters are plain
        ``qcluster``s."""
        python = sys.executable
        if name == "worker" and self.watcher:
            self.start_process(name, [python, "manage.py", "pool", "--skip-checks", "cluster"])
            if wait:
                self.wait_watching()
        else:
            self.start_process(name, [python, "manage.py", "qcluster", "--skip-checks"])

    def stop_watcher(self) -> None:
        """Nobody watches Docker events: the first cluster starts again without its
        watcher (a fault test's "the watcher is down")."""
        self.watcher = False
        self.stop_process("worker")
        self.start_cluster("worker")

    def start_watcher(self) -> None:
        """The first cluster starts again with its watcher (if it had none)."""
        if self.watcher and self.watcher_pid() is not None:
            return
        self.watcher = True
        self.stop_process("worker")
        self.start_cluster("worker")

    def watcher_pid(self) -> int | None:
        """The first cluster's watcher child, if it runs."""
        proc = self.procs.get("worker")
        if proc is None or proc.poll() is not None:
            return None
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        for pid in children.read_text().split() if children.exists() else []:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == WATCHER_NAME:
                    return int(pid)
        return None

    def wait_watching(self, *, timeout: float = 30.0) -> int:
        """Wait until the watcher child runs and has subscribed; its pid."""
        deadline = time.monotonic() + timeout
        while (pid := self.watcher_pid()) is None or not self._subscribed(pid):
            if time.monotonic() > deadline:
                raise RuntimeError("the watcher did not start; log:\n"
                                   + self.log("worker")[-3000:])
            time.sleep(0.2)
        return pid

    @staticmethod
    def _subscribed(pid: int) -> bool:
        """The child has its event stream to Docker open (the parent holds no socket)."""
        fds = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            return any("socket:" in os.readlink(fd) for fd in fds.iterdir())
        return False

    def start_process(self, name: str, cmd: list[str]) -> None:
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 (lives with the process)
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        self.stop_processes()
        self.remove_containers()

    def stop_processes(self) -> None:
        """The platform stopped; its containers (and data dir) stay."""
        for name in ["web", *sorted(n for n in self.procs if n.startswith("worker"))]:
            self.stop_process(name)

    def remove_containers(self) -> None:
        remove_instance(self.instance, env=self.env)

    def create_users(self, names: list[str], *, password: str) -> dict[str, str]:
        """Create the users at once and return name → an access token minted directly
        (no login: PBKDF2 per user and the login throttle would only slow set-up)."""
        script = (
            "import json\n"
            "from django.contrib.auth import get_user_model\n"
            "from django.contrib.auth.hashers import make_password\n"
            "from rest_framework_simplejwt.tokens import AccessToken\n"
            "U = get_user_model()\n"
            f"names = {names!r}\n"
            f"pw = make_password({password!r})\n"
            "U.objects.bulk_create([U(username=n, email=n + '@example.com', password=pw)"
            " for n in names])\n"
            "out = {u.username: str(AccessToken.for_user(u))"
            " for u in U.objects.filter(username__in=names)}\n"
            "print('LIVE-TOKENS ' + json.dumps(out))\n"
        )
        out = self.manage("shell", "-c", script).stdout
        line = next(x for x in out.splitlines() if x.startswith("LIVE-TOKENS "))
        return dict(json.loads(line.split(" ", 1)[1]))

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- helpers -------------------------------------------------------------------
    def wait_http(self, path: str, *, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.url}{path} did not answer; web log:\n"
                                   + self.log("web")[-3000:])
            time.sleep(0.2)


class LiveUser:
    """A user of a live stack, signed up and signed in through the API:
    ``LiveUser(stack, "alice").launch("nginx")``."""

    PASSWORD = "Live-user-pass-1!"

    def __init__(self, stack: LiveStack, name: str, *, register: bool = True) -> None:
        self.url = stack.url
        self.http = requests.Session()
        if register:
            answer = self.http.post(f"{self.url}/api/auth/register/", timeout=30, json={
                "username": name, "email": f"{name}@example.com", "password": self.PASSWORD})
            assert answer.status_code == 201, answer.text
        answer = self.http.post(f"{self.url}/api/auth/token/", timeout=30,
                                json={"username": name, "password": self.PASSWORD})
        assert answer.status_code == 200, answer.text
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access']}"

    def api(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        """``/api/deployments/<path>``, asserting the answer's status."""
        answer = self.http.request(method, f"{self.url}/api/deployments/{path}",
                                   timeout=60, **kwargs)
        assert answer.status_code == status, (method, path, answer.text)
        return answer.json() if answer.content else None

    def launch(self, runtime: str) -> dict:
        return dict(self.api("POST", "", 201, json={"runtime": runtime}))

    def upload(self, deployment: dict, name: str, data: bytes) -> None:
        self.api("POST", f"{deployment['id']}/files/", 201, files={"file": (name, data)})

    def show(self, deployment: dict) -> dict:
        return dict(self.api("GET", f"{deployment['id']}/", 200))

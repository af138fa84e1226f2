"""The soak's actors, each a thread with its own seeded random generator: users (claim,
upload, delete, read, release through the API), a fault injector (``docker kill`` and
``docker rm -f`` of the run's own containers) and operators (concurrent ``manage.py
pool`` commands). A ``Gate`` pauses them all for a checkpoint.

What a user may read on their own deployment's URL:
- their own page of that deployment (a page of a version older than the last one
  acknowledged is counted as a *stale read*, a note, not a violation: during a
  recovery the container briefly lags its store; at a checkpoint it must not);
- nothing of theirs: the placeholder, an empty root, an error, a refused connection
  (a container being replaced);
- never a page of another user, nor one of another of their own deployments: a
  *leak*, a violation, recorded with the slot's row at that moment.
"""

from __future__ import annotations

import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.live import ROOT, LiveStack

PAGE = "index.html"
MARK = re.compile(r"SOAK-CONTENT user=([\w-]+) dep=(\d+) v=(\d+)")
# An app that serves the uploaded index.html: python slots then answer like the others.
APP_PY = b"""\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with open("/app/index.html", "rb") as fh:
                code, body = 200, fh.read()
        except OSError:
            code, body = 404, b"no page"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Page).serve_forever()
"""


def page_body(user: str, deployment: int, version: int) -> str:
    """The content unique to one upload: its user, deployment, version and a nonce."""
    return (f"<h1>SOAK-CONTENT user={user} dep={deployment} v={version} "
            f"nonce={secrets.token_hex(6)}</h1>\n")


def http_page(port: int, timeout: float = 3.0) -> tuple[int, str]:
    """GET the deployment's URL once: (status, body); (0, why) when nothing answers."""
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/", timeout=timeout)
    except requests.RequestException as exc:
        return 0, type(exc).__name__
    return answer.status_code, answer.text


# --- bookkeeping shared by the actors --------------------------------------------------
@dataclass
class Violation:
    kind: str
    detail: str
    phase: str
    context: dict[str, Any] = field(default_factory=dict)


class Tally:
    """Counts and findings; every actor writes here (under one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self.command_failures: list[dict[str, Any]] = []
        self.samples: dict[str, list[str]] = {}
        self.phase = "run"

    def op(self, kind: str, status: int | str = "") -> None:
        with self.lock:
            self.ops[kind] += 1
            self.statuses[f"{kind}:{status}"] += 1

    def note(self, kind: str, sample: str = "") -> None:
        with self.lock:
            self.notes[kind] += 1
            if sample and len(self.samples.setdefault(kind, [])) < 5:
                self.samples[kind].append(sample)

    def violation(self, kind: str, detail: str, **context: Any) -> None:
        with self.lock:
            self.violations.append(Violation(kind, detail, self.phase, context))
        print(f"VIOLATION [{self.phase}] {kind}: {detail}", flush=True)


class Gate:
    """Actors pass the gate before each step; ``pause`` closes it and waits for the
    steps under way to finish, so a checkpoint sees a platform nobody is acting on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.open = True
        self.done = False
        self.busy = 0

    def enter(self) -> bool:
        with self.cond:
            while not self.open and not self.done:
                self.cond.wait()
            if self.done:
                return False
            self.busy += 1
            return True

    def leave(self) -> None:
        with self.cond:
            self.busy -= 1
            self.cond.notify_all()

    def pause(self, *, finish: bool = False, timeout: float = 300.0) -> None:
        with self.cond:
            self.open = False
            self.done = self.done or finish
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: self.busy == 0, timeout=timeout):
                raise RuntimeError(f"{self.busy} actor step(s) still running after {timeout}s")

    def resume(self) -> None:
        with self.cond:
            self.open = True
            self.cond.notify_all()

    def sleep(self, seconds: float) -> None:
        """Sleep between steps; a pause or the end wakes it early."""
        with self.cond:
            self.cond.wait_for(lambda: not self.open or self.done, timeout=seconds)


class Actor(threading.Thread):
    """A loop of seeded steps with seeded pauses between them."""

    pause_range = (0.2, 1.0)

    def __init__(self, name: str, *, seed: int, gate: Gate, tally: Tally) -> None:
        super().__init__(name=name, daemon=True)
        self.rng = random.Random(seed)
        self.gate, self.tally = gate, tally
        self.crashed: BaseException | None = None

    def run(self) -> None:
        try:
            while self.gate.enter():
                try:
                    self.step()
                finally:
                    self.gate.leave()
                self.gate.sleep(self.rng.uniform(*self.pause_range))
        except BaseException as exc:  # reported by the driver: a broken actor is a broken soak
            self.crashed = exc
            raise
        finally:
            from django.db import connection

            connection.close()

    def step(self) -> None:
        raise NotImplementedError

    def pick(self, weights: dict[str, float]) -> str:
        choices = [k for k, w in weights.items() if w > 0]
        return self.rng.choices(choices, [weights[k] for k in choices])[0]


# --- users -------------------------------------------------------------------------------
@dataclass
class Site:
    """One deployment as its user knows it. ``candidates``: what the container may
    serve once settled — the last acknowledged page (None: no page), plus pages whose
    upload failed on the way (the store may hold them)."""

    id: int
    port: int
    runtime: str
    version: int = 0
    acked: int = 0
    candidates: list[str | None] = field(default_factory=lambda: [None])


class UserActor(Actor):
    RUNTIMES = {"nginx": 5.0, "apache": 3.0, "python": 2.0}

    def __init__(self, name: str, *, token: str, base_url: str, quota: int,
                 slot_of: Callable[[int], dict[str, Any]], **kw: Any) -> None:
        super().__init__(name, **kw)
        self.base = base_url
        self.quota = quota
        self.slot_of = slot_of  # port → the slot's row now (context for a violation)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        # A fresh connection each time: a kept-alive one the server closes while idle
        # fails the next POST without an answer (a client race, not the platform's).
        self.http.headers["Connection"] = "close"
        self.sites: dict[int, Site] = {}
        self.lock = threading.Lock()  # the checker reads ``sites`` between steps

    def step(self) -> None:
        try:
            self.act()
        except requests.RequestException as exc:
            self.tally.violation("api-unreachable", f"{self.name}: {exc!r}")

    def act(self) -> None:
        held = len(self.sites)
        action = self.pick({
            # Pools are smaller than users x quota: claims are often refused (503), and
            # releases keep slots moving through recycling, where the races are.
            "claim": 0.0 if held >= self.quota else (3.0 if held == 0 else 0.6),
            "upload": 4.0 * bool(held), "delete": 1.0 * bool(held),
            "release": 2.0 * bool(held), "read": 2.0 * bool(held),
        })
        if action == "claim":
            self.claim()
            return
        site = self.sites[self.rng.choice(sorted(self.sites))]
        {"upload": self.upload, "delete": self.delete, "release": self.release,
         "read": self.read}[action](site)

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, f"{self.base}/api{path}", timeout=60, **kw)

    def claim(self) -> None:
        runtime = self.pick(self.RUNTIMES)
        answer = self.api("POST", "/deployments/", json={"runtime": runtime})
        self.tally.op("claim", answer.status_code)
        self.expect(answer, "claim", 201, 503)
        if answer.status_code != 201:
            return
        data = answer.json()
        site = Site(id=data["id"], port=data["port"], runtime=runtime)
        with self.lock:
            self.sites[site.id] = site
        self.read(site)  # a fresh claim must not show anyone's page
        if runtime == "python":
            self.send(site, "app.py", APP_PY)
        self.upload(site)

    def send(self, site: Site, name: str, data: bytes) -> int:
        answer = self.api("POST", f"/deployments/{site.id}/files/",
                          files={"file": (name, data)})
        self.tally.op("upload", answer.status_code)
        self.expect(answer, "upload", 201, 502, 503)
        return answer.status_code

    def upload(self, site: Site) -> None:
        site.version += 1
        body = page_body(self.name, site.id, site.version)
        status = self.send(site, PAGE, body.encode())
        with self.lock:
            if status == 201:
                site.acked, site.candidates = site.version, [body]
            else:  # the store may hold it: the settled container may serve it
                site.candidates.append(body)
        self.read(site)

    def delete(self, site: Site) -> None:
        answer = self.api("DELETE", f"/deployments/{site.id}/files/{PAGE}")
        self.tally.op("delete", answer.status_code)
        self.expect(answer, "delete", 204, 404, 502, 503)
        with self.lock:
            if answer.status_code in (204, 404):
                site.acked, site.candidates = site.version, [None]
            else:
                site.candidates.append(None)
        self.read(site)

    def release(self, site: Site) -> None:
        answer = self.api("DELETE", f"/deployments/{site.id}/")
        self.tally.op("release", answer.status_code)
        self.expect(answer, "release", 204)
        with self.lock:
            self.sites.pop(site.id, None)

    def read(self, site: Site) -> None:
        status, body = http_page(site.port)
        self.tally.op("read", status)
        self.judge(site, status, body)

    def judge(self, site: Site, status: int, body: str) -> None:
        """Classify what the user read on their own URL (see the module docstring)."""
        marks = MARK.findall(body)
        if not marks:
            self.tally.note("read-nothing")
        for user, dep, version in marks:
            if user != self.name or int(dep) != site.id:
                self.tally.violation(
                    "leak", f"{self.name} read {user}'s deployment {dep} v{version} on port "
                    f"{site.port}, the URL of their deployment {site.id}",
                    reader=self.name, deployment=site.id, port=site.port, status=status,
                    body=body[:300], slot=self.slot_of(site.port))
            elif int(version) < site.acked:
                self.tally.note("stale-read", f"{time.strftime('%H:%M:%S')} {self.name} dep "
                                f"{site.id} port {site.port} read v{version} after "
                                f"v{site.acked} was acknowledged; slot {self.slot_of(site.port)}")
            else:
                self.tally.note("read-own")

    def expect(self, answer: requests.Response, what: str, *allowed: int) -> None:
        """Any other status is a finding: a 500 is a violation, the rest a note."""
        if answer.status_code in allowed:
            return
        text = f"{self.name} {what} → {answer.status_code}: {answer.text[:300]}"
        if answer.status_code >= 500:
            self.tally.violation("server-error", text)
        else:
            self.tally.note(f"unexpected-{what}-{answer.status_code}", text)


# --- faults and operators ----------------------------------------------------------------
def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


class FaultActor(Actor):
    """Kills or removes one of the run's own running containers now and then."""

    pause_range = (1.5, 5.0)

    def __init__(self, name: str, *, instance: str, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.instance = instance

    def step(self) -> None:
        # Newest first: ``kill-newest`` hits a container just made by a rebuild, while
        # its slot is being finished and its content pushed.
        running = docker("ps", "-q", "--no-trunc", "--filter",
                         f"label=paas.instance={self.instance}").stdout.split()
        if not running:
            return
        fault = self.pick({"kill": 3.0, "rm": 2.0, "kill-newest": 1.5})
        target = running[0] if fault == "kill-newest" else self.rng.choice(sorted(running))
        done = docker("rm", "-f", target) if fault == "rm" else docker("kill", target)
        with self.tally.lock:
            self.tally.faults[fault] += done.returncode == 0


class ClusterKillActor(Actor):
    """Kills one of the stack's django-q2 clusters outright now and then (SIGKILL: a
    task in hand is lost, and Redis does not hand it out again; the reconcile pass must
    finish what it left) and starts it again."""

    pause_range = (6.0, 14.0)

    def __init__(self, name: str, *, stack: LiveStack, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.stack = stack

    def step(self) -> None:
        clusters = sorted(n for n in self.stack.procs if n.startswith("worker"))
        target = self.rng.choice(clusters)
        self.stack.stop_process(target, signal.SIGKILL)
        self.stack.start_cluster(target)
        with self.tally.lock:
            self.tally.faults["kill-cluster"] += 1


class AdminClient:
    """An operator in the Django admin: resize a pool through the runtime's change form,
    reinitialize slots with the pool containers' action. ``forms(runtime)`` gives the
    change form's current values and the runtime's slot ids (read by the driver)."""

    def __init__(self, base_url: str, *, username: str, password: str,
                 forms: Callable[[str], tuple[int, dict[str, Any], list[int]]]) -> None:
        self.base = base_url
        self.forms = forms
        self.http = requests.Session()
        self.http.headers["Connection"] = "close"  # as the users: no stale kept-alive ones
        self.http.get(f"{self.base}/admin/login/", timeout=30)
        answer = self.post("/admin/login/?next=/admin/",
                           {"username": username, "password": password})
        if answer.status_code != 302 or "/login/" in answer.headers.get("Location", ""):
            raise RuntimeError(f"admin login failed: {answer.status_code} {answer.text[:300]}")

    def post(self, path: str, data: dict[str, Any]) -> requests.Response:
        token = self.http.cookies.get("csrftoken", "")
        return self.http.post(f"{self.base}{path}", data={**data, "csrfmiddlewaretoken": token},
                              headers={"Referer": f"{self.base}{path}"}, timeout=300,
                              allow_redirects=False)

    def resize(self, runtime: str, size: int) -> int:
        pk, form, _slots = self.forms(runtime)
        return self.post(f"/admin/pools/runtime/{pk}/change/",
                         {**form, "pool_size": size}).status_code

    def reinitialize(self, runtime: str, rng: random.Random) -> int:
        _pk, _form, slots = self.forms(runtime)
        chosen = rng.sample(slots, k=min(len(slots), rng.randint(1, 2)))
        return self.post("/admin/pools/poolcontainer/", {
            "action": "reinitialize", "_selected_action": chosen, "index": 0}).status_code


class OperatorActor(Actor):
    """Runs ``manage.py pool …`` commands (and, given an admin client, the admin's
    resize and reinitialize) as an operator would, beside the others."""

    pause_range = (2.0, 7.0)
    SIZES = {"nginx": (3, 5), "apache": (1, 3), "python": (1, 2)}

    def __init__(self, name: str, *, stack: LiveStack, admin: AdminClient | None = None,
                 **kw: Any) -> None:
        super().__init__(name, **kw)
        self.stack = stack
        self.admin = admin

    def step(self) -> None:
        runtime = self.rng.choice(sorted(self.SIZES))
        size = self.rng.randint(*self.SIZES[runtime])
        action = self.pick({"reconcile": 4.0, "reinit": 1.5, "set-size": 2.0, "add": 1.0,
                            "admin-resize": 1.5 * bool(self.admin),
                            "admin-reinit": 1.0 * bool(self.admin)})
        if self.admin and action.startswith("admin-"):
            self.in_admin(action, runtime, size)
            return
        args = {
            "reconcile": ["reconcile"],
            "reinit": ["reinit", runtime],
            "set-size": ["set-size", runtime, str(size)],
            "add": ["add", runtime, "1"],
        }[action]
        self.pool(action, *args)

    def in_admin(self, action: str, runtime: str, size: int) -> None:
        assert self.admin is not None
        try:
            status = (self.admin.resize(runtime, size) if action == "admin-resize"
                      else self.admin.reinitialize(runtime, self.rng))
        except requests.RequestException as exc:
            self.tally.violation("admin-unreachable", f"{action} {runtime}: {exc!r}")
            return
        self.tally.op(action, status)
        if status != 302:  # the admin redirects after a change or an action
            with self.tally.lock:
                self.tally.command_failures.append({"command": f"{action} {runtime}",
                                                    "rc": status})

    def pool(self, action: str, *args: str) -> None:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "manage.py", "pool", *args], cwd=ROOT,
                              env=self.stack.env, capture_output=True, text=True, timeout=300)
        self.tally.op(action, done.returncode)
        if done.returncode:
            with self.tally.lock:
                self.tally.command_failures.append({
                    "command": "pool " + " ".join(args), "rc": done.returncode,
                    "seconds": round(time.monotonic() - started, 1),
                    "output": (done.stdout + done.stderr)[-800:]})

#!/usr/bin/env python3
"""The platform benchmark: hand-out, release, recovery and scale on the real stack.

``make bench`` (or ``.venv/bin/python infrastructure/bench/bench.py [--small]``) starts
live stacks of its own, one after the other (gunicorn, the django-q2 cluster and the
watcher, see ``tests/live.py``), each under its own ``PAAS_INSTANCE`` label, data dir and
port range, measures, removes every container it made and writes
``bench-results/bench-<date>.json`` and a markdown table of issue 15's targets (value,
limit, met or not; printed, and written to ``bench-results/latest.md``).

The main stack (SQLite, the default; no Caddy, so the Docker part stands alone):
  1 claim_sequential  POST /api/deployments/ one after the other, keep-alive; first the
                      same client's authenticated GET of its (empty) deployment list
  2 burst             32 clients claiming from ≥ 200 idle nginx slots at once
    recycle           the burst's slots released at once, until all are idle again
    locust            locustfile.py headless: the claim/release mix, the burst's cross-check
  3 cold_start        ``docker run`` of the nginx image until its port answers HTTP
  4 release_to_idle   DELETE /api/deployments/{id}/ -> the slot is idle again
  7 upload            upload -> new content at the URL (nginx index.html; python app.py)
  5 kill_recovery     ``docker kill`` -> the user's file served again (watcher; reconcile)
  8 memory            PSS of the platform processes; memory of an idle container
The HTTPS stack (behind a Caddy of its own, as bench_proxy.py starts one):
  4b release_to_idle_https  release -> the slot's new hostname served over HTTPS
  6 pool_init         ``manage.py pool add nginx N`` until every new route is served
The PostgreSQL stack (a throwaway server; Redis when installed, BENCH_PG_REDIS=0 for
none; BENCH_PG_WEB_WORKERS gunicorn workers, default the SQLite stacks' count; on
disk with fsync on, BENCH_PG_DURABLE=0 for the tests' in-memory cluster):
  2b burst_postgres   the burst again
The benchmark asserts nothing: it reports each measure next to its target.
``--only SECTION`` runs just the stack that holds the section (``--only burst_postgres``:
the PostgreSQL stack alone, a minute or two).
BENCH_WEB_WORKERS sets the gunicorn worker count of the SQLite stacks (default 2, as
run-platform.sh).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    CLIENT_ERRORS,
    Client,
    SlotDB,
    docker_mem_mib,
    http_text,
    loadavg,
    machine_info,
    port_is_free,
    process_groups_pss,
    run,
    say,
    summary_ms,
    wait_until,
)

from tests.caddy import CaddyProcess, https_get  # noqa: E402
from tests.live import LiveStack, free_port  # noqa: E402
from tests.pgserver import throwaway_postgres  # noqa: E402

PASSWORD = "bench-Secret-123"
KILL_FILE = "bench-kill.txt"
APPS_DOMAIN = "apps.localhost"  # settings' default; the bench stacks keep it
# The pools' rule: a container that dies within this many seconds of its build
# (built_at) counts as a repeat failure and backs off instead of being replaced at
# once (pools.services.STABLE_SECONDS). Kill targets are claimed early and killed only
# once they are older than this, so the measure is the normal recovery path.
STABLE_SECONDS = 60


@dataclass(frozen=True)
class Sizes:
    warmup: int  # claims before the sequential measure (not counted)
    seq: int  # sequential claims
    burst_clients: int
    burst_per_client: int
    cold_reps: int
    release_reps: int
    kill_watch_reps: int
    kill_reconcile_reps: int
    init_count: int
    upload_reps: int
    app_reps: int
    margin: int  # spare idle nginx slots
    locust_cycles: int  # claim+release cycles per locust user (one user per burst client)
    settle_s: float = 90.0  # longest wait for a quiet host before a burst

    @property
    def burst_claims(self) -> int:
        return self.burst_clients * self.burst_per_client

    @property
    def kill_reps(self) -> int:
        return self.kill_watch_reps + self.kill_reconcile_reps

    @property
    def nginx_pool(self) -> int:
        # warm-up + sequential + burst + one slot for release (it comes back idle) +
        # kill targets + the upload deployment + spare.
        return (self.warmup + self.seq + self.burst_claims + 1 + self.kill_reps + 1
                + self.margin)


FULL = Sizes(warmup=10, seq=200, burst_clients=32, burst_per_client=7, cold_reps=5,
             release_reps=10, kill_watch_reps=5, kill_reconcile_reps=3, init_count=40,
             upload_reps=5, app_reps=3, margin=8, locust_cycles=7)
SMALL = Sizes(warmup=1, seq=4, burst_clients=2, burst_per_client=2, cold_reps=1,
              release_reps=1, kill_watch_reps=1, kill_reconcile_reps=1, init_count=3,
              upload_reps=1, app_reps=1, margin=1, locust_cycles=2, settle_s=0.0)


# --- targets (issue 15, 2-core machine, quiet host, one run) -----------------------------
@dataclass(frozen=True)
class Target:
    key: str  # dotted path into the results' sections
    label: str
    unit: str
    op: str  # "<=", ">=", "==" or "" (informational)
    limit: float | None = None
    # A limit derived from the same run: value at limit_key, plus limit.
    limit_key: str = ""


TARGETS = [
    Target("claim_sequential.p50_ms", "1. claim, sequential: p50", "ms", "<=", 5),
    Target("claim_sequential.p99_ms", "1. claim, sequential: p99", "ms", "<=", 15),
    Target("claim_sequential.auth_get.p50_ms",
           "1. authenticated GET of the empty deployment list: p50", "ms", ""),
    Target("claim_sequential.ratio_vs_auth_get_p50", "1. claim p50 / authenticated GET p50",
           "×", "<=", 2),
    Target("burst.idle_before", "2. burst, SQLite: idle slots at the start", "", ">=", 200),
    Target("burst.throughput_per_s", "2. burst, SQLite, 32 clients: throughput", "claims/s",
           ">=", 200),
    Target("burst.p99_over_mean", "2. burst, SQLite: p99 / mean", "×", "<=", 2.5),
    Target("burst.errors", "2. burst, SQLite: errors", "", "==", 0),
    Target("burst_postgres.idle_before", "2. burst, PostgreSQL: idle slots at the start", "",
           ">=", 200),
    Target("burst_postgres.throughput_per_s", "2. burst, PostgreSQL, 32 clients: throughput",
           "claims/s", ">=", 250),
    Target("burst_postgres.p99_over_mean", "2. burst, PostgreSQL: p99 / mean", "×", "<=", 2.5),
    Target("burst_postgres.errors", "2. burst, PostgreSQL: errors", "", "==", 0),
    Target("locust.claims_per_s", "2. cross-check, locust claim/release mix: claims/s",
           "claims/s", ""),
    Target("locust.claim_p50_ms", "2. cross-check, locust: claim p50", "ms", ""),
    Target("locust.claim_p99_ms", "2. cross-check, locust: claim p99", "ms", ""),
    Target("locust.ratio_vs_burst", "2. cross-check: locust claims/s / burst claims/s", "×",
           ""),
    Target("locust.failures", "2. cross-check, locust: failures", "", "==", 0),
    Target("cold_start.median_ms", "3. cold start (docker run → HTTP): median", "ms", ""),
    Target("cold_start.ratio_vs_claim_p50", "3. cold start / claim p50", "×", ">=", 40),
    Target("release_to_idle.p50_ms", "4. release → slot idle, Docker part: p50", "ms", "<=",
           600),
    Target("release_to_idle_https.p50_ms",
           "4. release → idle with the new slug's HTTPS route serving: p50", "ms", "<=", 1200),
    Target("kill_recovery.watcher.p50_ms", "5. kill → file served, watcher: p50 "
           "(≤ this run's cold start + 250 ms)", "ms", "<=", 250, "cold_start.median_ms"),
    Target("kill_recovery.reconcile.p50_ms",
           "5. kill → file served, reconcile pass: p50", "ms", ""),
    Target("pool_init.wall_s", "6. pool init, routes included: wall time", "s", "<=", 10),
    Target("pool_init.containers_per_s", "6. pool init: containers/s", "/s", ""),
    Target("upload.nginx.p50_ms", "7. upload → visible, nginx index.html: p50", "ms", ""),
    Target("upload.python.p50_ms", "7. upload → new answer, python app.py: p50", "ms", ""),
    Target("memory.platform_pss_mb", "8. platform PSS (web + cluster + watcher)", "MB",
           "<=", 300),
    Target("memory.container_mb.nginx", "8. idle container: nginx", "MiB", ""),
    Target("memory.container_mb.apache", "8. idle container: apache", "MiB", ""),
    Target("memory.container_mb.python", "8. idle container: python", "MiB", ""),
    Target("memory.container_mb.node", "8. idle container: node", "MiB", ""),
]
ALL_RUNTIMES = ("nginx", "apache", "python", "node")
# Slots besides nginx: one idle container each for the memory measure, and python one
# more for the app upload.
EXTRA_SLOTS = {"apache": 1, "python": 2, "node": 1}
# Each stack's sections, in the order they run (a stack's sections build on each other,
# so --only runs the whole stack that holds the section named).
STACKS = {
    "main": ["claim_sequential", "burst", "recycle", "locust", "cold_start",
             "release_to_idle", "upload", "kill_recovery", "memory"],
    "https": ["release_to_idle_https", "pool_init"],
    "postgres": ["burst_postgres"],
}
SECTIONS = [name for sections in STACKS.values() for name in sections]


# --- the stacks' outside pieces ----------------------------------------------------------
def ensure_network(stack: LiveStack) -> None:
    """The instance's network, made before ``pool init`` creates containers in
    parallel: its threads each check-then-create it, and Docker accepts duplicate names,
    so a fresh instance can end with several and every create fails with "network ...
    is ambiguous" (reported; see docs/BENCHMARKS.md)."""
    stack.manage("shell", "-c", "from pools.services import ensure_network; ensure_network()")


def routed(caddy: CaddyProcess, slug: str) -> bool:
    """Does Caddy pass https://<slug>.<apps domain>/ to a container? An idle nginx has
    no index page (403/404 from nginx); Caddy's own answers are its fallback page (no
    route) or 502 (a route, no container)."""
    try:
        status, body = https_get(caddy, f"{slug}.{APPS_DOMAIN}", timeout=2)
    except (OSError, http.client.HTTPException):
        return False
    return status not in (0, 502) and "No site here" not in body


@contextmanager
def throwaway_redis() -> Iterator[str]:
    """Debian's redis-server on a free loopback port, no persistence; stopped after."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="paas-bench-redis-")
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: not port_is_free(port), timeout=15, interval=0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(directory, ignore_errors=True)


def pg_idle_count(url: str) -> int:
    import psycopg  # the bench's only direct PostgreSQL access

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pools_poolcontainer WHERE status = 'idle'").fetchone()
    return int(row[0]) if row else 0


# --- measures shared by the stacks ----------------------------------------------------------
def burst_run(clients: list[Client], per_client: int, *, idle_before: int,
              web_port: int | None = None) -> tuple[dict[str, Any], list[tuple[Client, int]]]:
    """Every client claims ``per_client`` nginx deployments back to back, all starting
    at one barrier. Returns the figures and the (client, deployment id) claimed; with
    ``web_port``, also the CPU each part used per claim from the barrier on."""
    cpu: list[tuple[dict[int, tuple[str, int]], int, int]] = []
    barrier = threading.Barrier(len(clients), action=lambda: cpu.append(cpu_snapshot()))
    samples: list[tuple[float, float, int]] = []  # (start, latency, status)
    claimed: list[tuple[Client, int]] = []
    lock = threading.Lock()

    def worker(c: Client) -> None:
        mine: list[tuple[float, float, int]] = []
        ids: list[int] = []
        c.warm()  # this thread's keep-alive connection, opened before the clock starts
        barrier.wait()
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                elapsed, code, body = c.claim("nginx")
            except CLIENT_ERRORS:
                elapsed, code, body = time.perf_counter() - start, 0, {}
            mine.append((start, elapsed, code))
            if code == 201:
                ids.append(int(body["id"]))
        with lock:
            samples.extend(mine)
            claimed.extend((c, i) for i in ids)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        list(pool.map(worker, clients))
    cpu.append(cpu_snapshot())
    ok = [lat for _, lat, code in samples if code == 201]
    first = min(start for start, _, _ in samples)
    last = max(start + lat for start, lat, _ in samples)
    wall = last - first
    codes: dict[str, int] = {}
    for _, _, code in samples:
        codes[str(code)] = codes.get(str(code), 0) + 1
    result: dict[str, Any] = {
        "clients": len(clients), "claims": len(samples), "idle_before": idle_before,
        "wall_s": round(wall, 3), "throughput_per_s": round(len(ok) / wall, 1),
        "errors": len(samples) - len(ok), "status_codes": codes,
    }
    if ok:
        result.update(summary_ms(ok))
        result["p99_over_mean"] = round(result["p99_ms"] / result["mean_ms"], 2)
    if web_port is not None:
        result.update(cpu_per_claim(*cpu, web_port=web_port, claims=len(samples)))
    return result, claimed


def cpu_snapshot() -> tuple[dict[int, tuple[str, int]], int, int]:
    """Every process's CPU time so far ({pid: (what it is, clock ticks)}) and the
    machine's busy and total ticks, from /proc."""
    procs: dict[int, tuple[str, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile
            continue
        comm, fields = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        procs[int(stat.parent.name)] = (f"{comm} {cmdline}", int(fields[11]) + int(fields[12]))
    return (procs, *machine_ticks())


def machine_ticks() -> tuple[int, int]:
    """The machine's busy and total clock ticks so far (/proc/stat; idle and iowait are
    not busy)."""
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(cpu) - cpu[3] - cpu[4], sum(cpu)


def host_settle(*, busy_pct: float = 15.0, timeout: float = 90.0) -> dict[str, float]:
    """Wait (up to ``timeout``) until the machine's cores are less than ``busy_pct`` busy
    over a second: what an earlier section left (a stack's hundreds of containers being
    removed, the engine catching up) is not part of the next measure. Returns how long
    it waited and the last second's load."""
    started = time.perf_counter()
    while True:
        busy_before, total_before = machine_ticks()
        time.sleep(1.0)
        busy_after, total_after = machine_ticks()
        busy = 100 * (busy_after - busy_before) / max(total_after - total_before, 1)
        waited = time.perf_counter() - started
        if busy < busy_pct or waited > timeout:
            return {"host_settle_s": round(waited, 1), "host_busy_pct_before": round(busy, 1)}


def cpu_per_claim(before: tuple[dict[int, tuple[str, int]], int, int],
                  after: tuple[dict[int, tuple[str, int]], int, int], *,
                  web_port: int, claims: int) -> dict[str, Any]:
    """CPU milliseconds per claim of the web, the database server, this client and the
    rest between two snapshots, and how busy the machine's cores were: where a burst's
    ceiling is when it is bound by CPU."""
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    groups: dict[str, int] = {"web": 0, "database": 0, "client": 0, "other": 0}
    for pid, (what, ticks) in after[0].items():
        used = ticks - before[0].get(pid, (what, 0))[1]
        if pid == os.getpid():
            groups["client"] += used
        elif "gunicorn" in what and f"127.0.0.1:{web_port}" in what:
            groups["web"] += used
        elif what.startswith("postgres "):
            groups["database"] += used
        else:
            groups["other"] += used
    busy, total = after[1] - before[1], after[2] - before[2]
    return {"cpu_ms_per_claim": {k: round(v * tick_ms / max(claims, 1), 2)
                                 for k, v in groups.items()},
            "cores_busy_pct": round(100 * busy / total, 1) if total else None}


def locust_run(url: str, tokens: list[str], *, cycles: int, work_dir: Path) -> dict[str, Any]:
    """locustfile.py headless against ``url``: one locust user per token, each
    ``cycles`` claim+release cycles. Its own figures, from its CSV."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "tokens.json").write_text(json.dumps(tokens))
    users = len(tokens)
    # A safety cap only: the last user to finish ends the run.
    limit = 60 + cycles * users // 4
    cmd = [str(Path(sys.executable).parent / "locust"), "-f",
           str(Path(__file__).with_name("locustfile.py")), "--host", url, "--headless",
           "-u", str(users), "-r", str(users), "-t", f"{limit}s", "--reset-stats",
           "--only-summary", "--csv", str(work_dir / "locust"), "--loglevel", "WARNING"]
    env = {**os.environ, "BENCH_LOCUST_TOKENS": str(work_dir / "tokens.json"),
           "BENCH_LOCUST_CYCLES": str(cycles)}
    started = time.perf_counter()
    proc = run(cmd, check=False, timeout=limit + 60, env=env)
    wall = time.perf_counter() - started
    (work_dir / "locust.log").write_text(proc.stdout + proc.stderr)
    if not (work_dir / "locust_stats.csv").exists():
        raise RuntimeError(f"locust wrote no statistics (exit {proc.returncode}):\n"
                           + (proc.stdout + proc.stderr)[-2000:])
    figures = locust_figures(work_dir / "locust_stats.csv")
    if not figures["claims"]:
        raise RuntimeError(f"locust made no claim (exit {proc.returncode}):\n"
                           + (proc.stdout + proc.stderr)[-2000:])
    result: dict[str, Any] = {
        "tool": run([cmd[0], "--version"], check=False).stdout.split(" from ")[0].strip(),
        "users": users, "cycles_per_user": cycles, "exit_code": proc.returncode,
        "wall_s": round(wall, 1), **figures, "command": shlex.join(cmd),
    }
    if result["failures"]:
        failures = work_dir / "locust_failures.csv"
        result["failure_sample"] = failures.read_text()[:1000] if failures.exists() else ""
    return result


def locust_figures(stats_csv: Path) -> dict[str, Any]:
    """The claim and release rows of locust's ``<prefix>_stats.csv``: counts, locust's
    own rate (requests over the time from the stats reset to the last request) and
    percentiles (locust rounds them to two significant digits)."""
    with stats_csv.open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    claim, release = rows.get("claim", {}), rows.get("release", {})
    total = rows.get("Aggregated", {})

    def num(row: dict[str, str], column: str) -> float | None:
        try:
            return float(row[column])
        except (KeyError, ValueError):  # no row, or "N/A" for no samples
            return None

    return {
        "claims": int(num(claim, "Request Count") or 0),
        "releases": int(num(release, "Request Count") or 0),
        "failures": int(num(total, "Failure Count") or 0),
        "claims_per_s": round(num(claim, "Requests/s") or 0, 1),
        "requests_per_s": round(num(total, "Requests/s") or 0, 1),
        "claim_p50_ms": num(claim, "50%"), "claim_p99_ms": num(claim, "99%"),
        "claim_mean_ms": round(num(claim, "Average Response Time") or 0, 2),
        "release_p50_ms": num(release, "50%"),
    }


# --- the benchmark ------------------------------------------------------------------------
class Bench:
    def __init__(self, sizes: Sizes, *, small: bool, port_base: int,
                 runtimes: tuple[str, ...] = ALL_RUNTIMES) -> None:
        self.sizes = sizes
        self.runtimes = runtimes
        self.small = small
        self.instance = f"bench-{os.getpid()}{random.randint(100, 999)}"
        self.port_base = port_base
        b = port_base
        nginx_top = b + sizes.nginx_pool + sizes.init_count + 40
        self.cold_ports = range(nginx_top + 100, nginx_top + 140)
        ranges = (f"nginx={b}-{nginx_top},apache={nginx_top + 1}-{nginx_top + 20},"
                  f"python={nginx_top + 21}-{nginx_top + 40},"
                  f"node={nginx_top + 41}-{nginx_top + 60}")
        self.stack = LiveStack(
            instance=self.instance, port_base=port_base,
            sizes=f"nginx={sizes.nginx_pool},"
                  + ",".join(f"{rt}={EXTRA_SLOTS[rt] if rt in runtimes else 0}"
                             for rt in ALL_RUNTIMES[1:]),
            extra_env={**self.stack_env(), "PAAS_PORT_RANGES": ranges},
            watcher=True,
            web_workers=int(os.environ.get("BENCH_WEB_WORKERS", "2")),
        )
        self.results: dict[str, Any] = {}
        self.tokens: dict[str, str] = {}
        self.cold_containers: list[str] = []
        self.kill_targets: list[dict[str, Any]] = []
        self.kill_ready_at = 0.0
        self.db: SlotDB | None = None
        self.burst_claimed: list[tuple[Client, int]] = []

    # -- set-up -----------------------------------------------------------------------
    def setup(self) -> dict[str, Any]:
        s = self.sizes
        info: dict[str, Any] = {"instance": self.instance, "ranges":
                                self.stack.env["PAAS_PORT_RANGES"],
                                "pool_sizes": self.stack.env["PAAS_POOL_SIZES"]}
        say(f"instance {self.instance}, data dir {self.stack.data_dir}")
        self.stack.manage("migrate", "--noinput")
        started = time.perf_counter()
        build = self.stack.manage("pool", "build-images", *self.runtimes, check=False)
        if build.returncode != 0:
            raise RuntimeError("pool build-images failed:\n" + build.stdout[-2000:]
                               + build.stderr[-2000:])
        info["build_images_s"] = round(time.perf_counter() - started, 1)
        say(f"images ready ({info['build_images_s']} s); starting the stack: "
            f"{self.stack.env['PAAS_POOL_SIZES']}")
        ensure_network(self.stack)  # before `pool init` (see ensure_network)
        started = time.perf_counter()
        self.stack.start()
        elapsed = time.perf_counter() - started
        total = s.nginx_pool + sum(EXTRA_SLOTS.get(rt, 0) for rt in self.runtimes)
        info["stack_start_s"] = round(elapsed, 1)
        info["stack_start_containers"] = total
        say(f"stack up at {self.stack.url} in {elapsed:.1f} s ({total} containers)")
        self.db = SlotDB(self.stack.data_dir / "paas.sqlite3")
        info["slots_after_start"] = self.db.counts()
        if info["slots_after_start"].get("idle", 0) != total:
            raise RuntimeError(f"not every slot came up idle: {info['slots_after_start']}")

        # Users: one through the real API (register + token), the rest made in one shell
        # call with JWTs minted directly (PBKDF2 for 40 logins would only slow set-up).
        resp = requests.post(f"{self.stack.url}/api/auth/register/", json={
            "username": "bench-api", "email": "bench-api@example.com",
            "password": PASSWORD}, timeout=30)
        if resp.status_code != 201:
            raise RuntimeError(f"register answered {resp.status_code}: {resp.text[:300]}")
        resp = requests.post(f"{self.stack.url}/api/auth/token/", json={
            "username": "bench-api", "password": PASSWORD}, timeout=30)
        resp.raise_for_status()
        self.tokens["bench-api"] = resp.json()["access"]
        names = ["bench-seq", "bench-ops", *(f"bench-burst-{i}" for i in range(s.burst_clients)),
                 *(f"bench-locust-{i}" for i in range(s.burst_clients))]
        script = (
            "import json\n"
            "from django.contrib.auth import get_user_model\n"
            "from django.contrib.auth.hashers import make_password\n"
            "from rest_framework_simplejwt.tokens import AccessToken\n"
            "U = get_user_model()\n"
            f"names = {names!r}\n"
            f"pw = make_password({PASSWORD!r})\n"
            "U.objects.bulk_create([U(username=n, email=n + '@example.com', password=pw)"
            " for n in names])\n"
            "out = {u.username: str(AccessToken.for_user(u))"
            " for u in U.objects.filter(username__in=names)}\n"
            "print('BENCH-TOKENS ' + json.dumps(out))\n"
        )
        out = self.stack.manage("shell", "-c", script).stdout
        line = next(x for x in out.splitlines() if x.startswith("BENCH-TOKENS "))
        self.tokens.update(json.loads(line.split(" ", 1)[1]))

        # Kill targets: claimed now with a file each, killed later (see STABLE_SECONDS).
        ops = self.client("bench-ops")
        for i in range(s.kill_reps):
            dep = ops.claim_ok("nginx")
            token = f"kill-target-{i}-{random.getrandbits(48):x}"
            ops.upload(dep["id"], KILL_FILE, token.encode())
            self.kill_targets.append({"deployment": dep["id"], "port": dep["port"],
                                      "token": token})
        self.kill_ready_at = time.monotonic() + STABLE_SECONDS + 1
        return info

    def client(self, user: str) -> Client:
        return Client(self.stack.url, self.tokens[user])

    @staticmethod
    def stack_env() -> dict[str, str]:
        """What every bench stack sets: no quota or throttle in the way of the load,
        tokens that outlive the run, no periodic monitor pass in the measures."""
        return {
            "PAAS_USER_QUOTA": "1000",
            "PAAS_AUTH_THROTTLE": "100000/min",
            "PAAS_LOGIN_FAILURE_LIMIT": "1000",
            "PAAS_ACCESS_TOKEN_MINUTES": "600",
            "PAAS_MONITOR_INTERVAL": "3600",
            "PAAS_LOG_LEVEL": "WARNING",
        }

    @staticmethod
    def remove_networks(instance: str) -> None:
        """Every network named like the instance's (duplicates included), by id."""
        name = f"paas-{instance}"
        out = run(["docker", "network", "ls", "--filter", f"name={name}", "--format",
                   "{{.ID}} {{.Name}}"], check=False).stdout
        ids = [line.split()[0] for line in out.splitlines() if line.split()[1:] == [name]]
        if ids:
            run(["docker", "network", "rm", *ids], check=False)

    # -- 1. sequential claims ------------------------------------------------------------
    def claim_sequential(self) -> dict[str, Any]:
        """The claims, and first the yardstick issue 15 compares them with: an
        authenticated GET of the deployment list by the same client (same keep-alive
        session, same JWT) while its user has no deployment yet."""
        client = self.client("bench-seq")
        gets: list[float] = []
        for i in range(self.sizes.warmup + self.sizes.seq):
            elapsed, code = client.list_deployments()
            if code != 200:
                raise RuntimeError(f"GET /api/deployments/ answered {code}")
            if i >= self.sizes.warmup:
                gets.append(elapsed)
        for _ in range(self.sizes.warmup):
            client.claim_ok("nginx")
        latencies: list[float] = []
        errors = 0
        for _ in range(self.sizes.seq):
            elapsed, code, _ = client.claim("nginx")
            if code == 201:
                latencies.append(elapsed)
            else:
                errors += 1
        result = {**summary_ms(latencies), "errors": errors, "warmup": self.sizes.warmup,
                  "auth_get": summary_ms(gets)}
        result["ratio_vs_auth_get_p50"] = round(result["p50_ms"] / result["auth_get"]["p50_ms"], 2)
        return result

    # -- 2. burst ---------------------------------------------------------------------
    def burst(self) -> dict[str, Any]:
        assert self.db is not None
        clients = [self.client(f"bench-burst-{i}") for i in range(self.sizes.burst_clients)]
        settled = host_settle(timeout=self.sizes.settle_s)
        result, self.burst_claimed = burst_run(
            clients, self.sizes.burst_per_client, idle_before=self.db.counts().get("idle", 0),
            web_port=self.stack.port)
        return {**result, **settled}

    # -- 2b. the burst's slots back (so locust finds as many idle) ----------------------
    def recycle(self) -> dict[str, Any]:
        """Release every burst deployment at once (32 clients) and wait until the pool
        has as many idle slots as before the burst: the recycle rate, and the pool the
        locust run needs."""
        assert self.db is not None
        db = self.db
        target = self.results["burst"].get("idle_before", 0)
        claimed = self.burst_claimed
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.sizes.burst_clients) as pool:
            list(pool.map(lambda cd: cd[0].release(cd[1]), claimed))
        released = time.perf_counter() - started
        wait_until(lambda: db.counts().get("idle", 0) >= target, timeout=600, interval=0.1)
        wall = time.perf_counter() - started
        return {"released": len(claimed), "release_requests_s": round(released, 2),
                "all_idle_again_s": round(wall, 2),
                "recycled_per_s": round(len(claimed) / wall, 1) if wall else None}

    # -- 2c. locust cross-check -------------------------------------------------------
    def locust(self) -> dict[str, Any]:
        assert self.db is not None
        users = self.sizes.burst_clients
        tokens = [self.tokens[f"bench-locust-{i}"] for i in range(users)]
        idle_before = self.db.counts().get("idle", 0)
        result = locust_run(self.stack.url, tokens, cycles=self.sizes.locust_cycles,
                            work_dir=self.stack.data_dir / "locust")
        burst = self.results["burst"].get("throughput_per_s")
        if burst and result.get("claims_per_s"):
            result["ratio_vs_burst"] = round(result["claims_per_s"] / burst, 2)
        result["idle_before"] = idle_before
        # Its releases recycle many slots at once: let them finish before anything else
        # is timed (they would share the machine with the next sections).
        db = self.db
        started = time.perf_counter()
        wait_until(lambda: db.counts().get("idle", 0) >= idle_before, timeout=600,
                   interval=0.1)
        result["all_idle_again_s"] = round(time.perf_counter() - started, 2)
        return result

    # -- 3. cold start -----------------------------------------------------------------
    def cold_start(self, claim_p50_ms: float | None) -> dict[str, Any]:
        from pools.imagebuild import image_tag  # no Django settings needed

        image = image_tag("nginx")
        times: list[float] = []
        run_returned: list[float] = []
        free = (p for p in self.cold_ports if port_is_free(p))
        for i in range(self.sizes.cold_reps):
            port = next(free)
            name = f"paas-{self.instance}-cold-{i}"
            start = time.perf_counter()
            cid = run(["docker", "run", "-d", "--name", name,
                       "--label", f"paas.bench={self.instance}",
                       "-p", f"127.0.0.1:{port}:80", image]).stdout.strip()
            self.cold_containers.append(cid)
            run_returned.append(time.perf_counter() - start)

            def answers(port: int = port) -> bool:
                return http_text(port, timeout=0.5)[0] != 0

            wait_until(answers, timeout=60, interval=0.005)
            times.append(time.perf_counter() - start)
        self.remove_cold()
        median_ms = statistics.median(times) * 1000
        result: dict[str, Any] = {
            "image": image, "n": len(times), "median_ms": round(median_ms, 1),
            "min_ms": round(min(times) * 1000, 1), "max_ms": round(max(times) * 1000, 1),
            "docker_run_returned_median_ms": round(statistics.median(run_returned) * 1000, 1),
        }
        if claim_p50_ms:
            result["ratio_vs_claim_p50"] = round(median_ms / claim_p50_ms, 1)
        return result

    def remove_cold(self) -> None:
        if self.cold_containers:
            run(["docker", "rm", "-f", *self.cold_containers], check=False)
            self.cold_containers = []

    # -- 4. release -> idle ------------------------------------------------------------
    def release_to_idle(self) -> dict[str, Any]:
        assert self.db is not None
        db = self.db
        client = self.client("bench-ops")
        totals: list[float] = []
        deletes: list[float] = []
        for _ in range(self.sizes.release_reps):
            dep = client.claim_ok("nginx")
            before = db.slot(dep["port"])
            start = time.perf_counter()
            deletes.append(client.release(dep["id"]))

            def idle_again(port: int = dep["port"], gen: int = before["generation"]) -> bool:
                row = db.slot(port)
                return bool(row["status"] == "idle" and row["generation"] > gen)

            wait_until(idle_again, timeout=60)
            totals.append(time.perf_counter() - start)
        return {**summary_ms(totals),
                "delete_request_p50_ms": round(statistics.median(deletes) * 1000, 2)}

    # -- 5. kill -> served again -----------------------------------------------------------
    def kill_recovery(self) -> dict[str, Any]:
        wait = self.kill_ready_at - time.monotonic()
        if wait > 0:
            say(f"waiting {wait:.0f} s until the kill targets are past the "
                f"{STABLE_SECONDS} s repeat-failure window")
            time.sleep(wait)
        targets = list(self.kill_targets)
        watch = [self.kill_once(targets.pop(0)) for _ in range(self.sizes.kill_watch_reps)]
        self.stack.stop_watcher()
        try:
            reconcile = [self.kill_once(targets.pop(0), reconcile=True)
                         for _ in range(self.sizes.kill_reconcile_reps)]
        finally:
            self.stack.start_watcher()
        return {"watcher": self.kill_summary(watch), "reconcile": self.kill_summary(reconcile)}

    @staticmethod
    def kill_summary(reps: list[dict[str, float]]) -> dict[str, Any]:
        out: dict[str, Any] = summary_ms([r["served_s"] for r in reps])
        for key in ("detected_s", "slot_ready_s", "reconcile_cmd_s", "die_s", "released_s",
                    "created_s", "started_s"):
            values = [r[key] for r in reps if key in r]
            if values:
                out[key.replace("_s", "_p50_ms")] = round(statistics.median(values) * 1000, 1)
        return out

    def kill_once(self, target: dict[str, Any], *, reconcile: bool = False) -> dict[str, float]:
        assert self.db is not None
        db = self.db
        port, token = target["port"], target["token"]
        status, body = http_text(port, f"/{KILL_FILE}")
        if status != 200 or body != token:
            raise RuntimeError(f"kill target on {port} does not serve its file: {status}")
        before = db.slot(port)
        start, wall = time.perf_counter(), time.time()
        run(["docker", "kill", before["container_id"]])
        marks: dict[str, float] = {}
        if reconcile:
            cmd = self.stack.manage("pool", "reconcile", check=False)
            marks["reconcile_cmd_s"] = time.perf_counter() - start
            if cmd.returncode != 0:
                raise RuntimeError("pool reconcile failed: " + cmd.stderr[-1000:])

        def served() -> bool:
            now = time.perf_counter() - start
            row = db.slot(port)
            if "detected_s" not in marks and row["generation"] > before["generation"]:
                marks["detected_s"] = now
            if (row["status"] == "assigned" and row["generation"] > before["generation"]
                    and "slot_ready_s" not in marks):
                marks["slot_ready_s"] = now
            if row["container_id"] == before["container_id"]:
                return False  # the old container may answer for a moment: not it
            status, body = http_text(port, f"/{KILL_FILE}", timeout=0.5)
            return status == 200 and body == token

        wait_until(served, timeout=90, interval=0.02)
        marks["served_s"] = time.perf_counter() - start
        marks.update(self.engine_marks(wall, old=before["container_id"],
                                       new=db.slot(port)["container_id"]))
        return marks

    def engine_marks(self, wall: float, *, old: str, new: str) -> dict[str, float]:
        """When Docker reported the old container's death and its network's release (the
        host port is free from then) and the replacement's create and start: the
        engine's own event times, seconds after the kill was called. The part of a
        recovery that is Docker's, from the same run."""
        window = ["--since", f"{wall:.3f}", "--until", f"{time.time():.3f}"]
        events = [json.loads(line) for line in run(
            ["docker", "events", *window, "--filter", "type=container", "--filter",
             f"label=paas.instance={self.instance}", "--format", "{{json .}}"],
            check=False).stdout.splitlines()]
        events += [event for event in map(json.loads, run(
            ["docker", "events", *window, "--filter", "type=network", "--filter",
             "event=disconnect", "--format", "{{json .}}"], check=False).stdout.splitlines())
            if event.get("Actor", {}).get("Attributes", {}).get("container") == old]
        wanted = {(old, "die"): "die_s", (old, "disconnect"): "released_s",
                  (new, "create"): "created_s", (new, "start"): "started_s"}
        marks: dict[str, float] = {}
        for event in events:
            who = event.get("id") or event["Actor"]["Attributes"]["container"]
            key = wanted.get((who, event.get("Action", "")))
            if key and key not in marks:
                marks[key] = event["timeNano"] / 1e9 - wall
        return marks

    # -- 6. pool init, routes included (the HTTPS stack) ---------------------------------
    def pool_init(self, stack: LiveStack, caddy: CaddyProcess, db: SlotDB) -> dict[str, Any]:
        """``pool add nginx N`` on a stack behind Caddy, until every new slot's hostname
        is routed to its container (a slot's route is loaded before it turns idle, so
        this is the command's own time plus a check)."""
        n = self.sizes.init_count
        parallel = stack.env.get("PAAS_CREATE_PARALLEL", "4 (default)")
        ports_before = set(db.ports())
        start = time.perf_counter()
        cmd = run([sys.executable, "manage.py", "pool", "add", "nginx", str(n)],
                  env=stack.env, timeout=600)
        command_s = time.perf_counter() - start
        progress = re.findall(r"\[(\d+)/(\d+)\] slot \d+ (ready|not ready[^(]*?)\s*\(([\d.]+)s\)",
                              cmd.stdout)
        ready = sum(1 for p in progress if p[2] == "ready")
        internal = float(progress[-1][3]) if progress else command_s
        if ready != n:
            raise RuntimeError(f"only {ready}/{n} containers ready:\n{cmd.stdout[-2000:]}")
        # One HTTPS request per new hostname takes a while on its own: routes that
        # answer the first check were in place when the command ended, and only a route
        # still missing then adds to the wall time.
        pending = {db.slot(p)["slug"] for p in db.ports() if p not in ports_before}
        pending.difference_update({slug for slug in pending if routed(caddy, slug)})
        routed_at_end = n - len(pending)
        wall = command_s
        if pending:
            def all_routed() -> bool:
                pending.difference_update({slug for slug in pending if routed(caddy, slug)})
                return not pending

            wait_until(all_routed, timeout=120, interval=0.05)
            wall = time.perf_counter() - start
        return {"containers": n, "parallel": parallel, "wall_s": round(wall, 2),
                "command_s": round(command_s, 2), "routed_when_command_ended": routed_at_end,
                "containers_per_s": round(n / wall, 2),
                "create_phase_s": round(internal, 2),
                "create_phase_per_s": round(n / internal, 2) if internal else None}

    # -- 4b. release -> idle with the new slug's HTTPS route (the HTTPS stack) ---------
    def release_to_idle_https(self, client: Client, caddy: CaddyProcess,
                              db: SlotDB) -> dict[str, Any]:
        """As section 4, on a stack behind Caddy, until the slot's new hostname is
        answered by its container over HTTPS."""
        idle: list[float] = []
        served: list[float] = []
        for _ in range(self.sizes.release_reps):
            dep = client.claim_ok("nginx")
            before = db.slot(dep["port"])
            start = time.perf_counter()
            client.release(dep["id"])

            def idle_again(port: int = dep["port"], gen: int = before["generation"]) -> bool:
                row = db.slot(port)
                return bool(row["status"] == "idle" and row["generation"] > gen)

            wait_until(idle_again, timeout=60)
            idle.append(time.perf_counter() - start)
            slug = db.slot(dep["port"])["slug"]
            if not slug or slug == before["slug"]:
                raise RuntimeError(f"slot on {dep['port']} is idle without a new slug")

            def serving(slug: str = slug) -> bool:
                return routed(caddy, slug)

            wait_until(serving, timeout=60)
            served.append(time.perf_counter() - start)
        return {**summary_ms(served), "idle_p50_ms": round(statistics.median(idle) * 1000, 1)}

    # -- 7. upload -> visible ------------------------------------------------------------
    def upload(self) -> dict[str, Any]:
        client = self.client("bench-ops")
        nginx = client.claim_ok("nginx")
        times: list[float] = []
        posts: list[float] = []
        for i in range(self.sizes.upload_reps):
            text = f"<h1>bench upload {i} {random.getrandbits(48):x}</h1>"
            start = time.perf_counter()
            posts.append(client.upload(nginx["id"], "index.html", text.encode()))

            def visible(text: str = text) -> bool:
                return text in http_text(nginx["port"], "/")[1]

            wait_until(visible, timeout=30)
            times.append(time.perf_counter() - start)
        result: dict[str, Any] = {
            "nginx": {**summary_ms(times),
                      "upload_request_p50_ms": round(statistics.median(posts) * 1000, 1)}}
        if "python" not in self.runtimes:
            return result
        python = client.claim_ok("python")
        app_times: list[float] = []
        for i in range(self.sizes.app_reps):
            text = f"bench app {i} {random.getrandbits(48):x}"
            app = (
                "import os\n"
                "from http.server import BaseHTTPRequestHandler, HTTPServer\n\n"
                "class H(BaseHTTPRequestHandler):\n"
                "    def do_GET(self):\n"
                f"        body = {text!r}.encode()\n"
                "        self.send_response(200)\n"
                "        self.send_header('Content-Length', str(len(body)))\n"
                "        self.end_headers()\n"
                "        self.wfile.write(body)\n\n"
                "HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n"
            )
            start = time.perf_counter()
            client.upload(python["id"], "app.py", app.encode())

            def answering(text: str = text) -> bool:
                return http_text(python["port"], "/")[1] == text

            wait_until(answering, timeout=90, interval=0.02)
            app_times.append(time.perf_counter() - start)
        result["python"] = summary_ms(app_times)
        return result

    # -- 8. memory -----------------------------------------------------------------------
    def memory(self) -> dict[str, Any]:
        assert self.db is not None
        pgids = {name: proc.pid for name, proc in self.stack.procs.items()}
        groups = process_groups_pss(pgids)
        pss_kb = sum(g["pss_kb"] for g in groups.values())
        containers: dict[str, float] = {}
        sources: dict[str, str] = {}
        for rt in self.runtimes:
            containers[rt], sources[rt] = docker_mem_mib(self.db.idle_container(rt))
        return {
            "platform_pss_mb": round(pss_kb / 1024, 1),
            "platform_rss_mb": round(sum(g["rss_kb"] for g in groups.values()) / 1024, 1),
            "groups": {name: {"processes": g["processes"],
                              "pss_mb": round(g["pss_kb"] / 1024, 1),
                              "rss_mb": round(g["rss_kb"] / 1024, 1)}
                       for name, g in groups.items()},
            "container_mb": containers,
            "container_mb_source": sources,
        }

    # -- driving -------------------------------------------------------------------------
    def section(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        say(f"section {name} ...")
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["section_s"] = round(time.perf_counter() - started, 1)
        self.results[name] = result
        say(f"section {name}: {json.dumps(result)[:400]}")

    def run(self, only: str = "") -> dict[str, Any]:
        """Every stack, one after the other; with ``only`` (a section's name) just the
        stack that holds it."""
        meta: dict[str, Any] = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "mode": "small" if self.small else "full",
            "sizes": {**asdict(self.sizes), "nginx_pool": self.sizes.nginx_pool,
                      "burst_claims": self.sizes.burst_claims},
            "machine": machine_info(),
            "git": run(["git", "rev-parse", "--short", "HEAD"], check=False).stdout.strip(),
            # Other work on the host skews every number: the load is part of the result.
            "loadavg_before": loadavg(),
            "web": f"gunicorn gthread (balanced accept), {self.stack.web_workers} workers x 8 threads",
        }
        stacks = [n for n, sections in STACKS.items() if not only or only in sections]
        started = time.perf_counter()
        if "main" in stacks:
            self.main_stack(meta)
        # One stack at a time: each of the next two starts after the previous is gone.
        if "https" in stacks:
            self.other_stack(STACKS["https"], self.https_stack)
        if "postgres" in stacks:
            self.other_stack(STACKS["postgres"], self.postgres_stack)
        left = 0
        for instance in (self.instance, f"{self.instance}-https", f"{self.instance}-pg"):
            left += len(run(["docker", "ps", "-aq", "--filter",
                             f"label=paas.instance={instance}"], check=False).stdout.split())
        meta["containers_left"] = left
        meta["total_s"] = round(time.perf_counter() - started, 1)
        meta["loadavg_after"] = loadavg()
        for name in (s for n in stacks for s in STACKS[n]):
            self.results.setdefault(name, {"error": "not run"})
        return {"meta": meta, "sections": self.results,
                "targets": evaluate(self.results)}

    def main_stack(self, meta: dict[str, Any]) -> None:
        """The SQLite stack: sections 1-5, 7 and 8."""
        try:
            meta["setup"] = self.setup()
            self.section("claim_sequential", self.claim_sequential)
            self.section("burst", self.burst)
            self.section("recycle", self.recycle)
            self.section("locust", self.locust)
            p50 = self.results["claim_sequential"].get("p50_ms")
            self.section("cold_start", lambda: self.cold_start(p50))
            self.section("release_to_idle", self.release_to_idle)
            self.section("upload", self.upload)
            # Memory before the kill: its reconcile half restarts the cluster without its
            # watcher (the watcher is the cluster's child), which would measure a cluster
            # fresh from its start instead of one that has done the load sections' work.
            self.section("memory", self.memory)
            self.section("kill_recovery", self.kill_recovery)
        except Exception as exc:
            traceback.print_exc()
            meta["error"] = f"{type(exc).__name__}: {exc}"
            meta["web_log_tail"] = self.stack.log("web")[-3000:]
        finally:
            say("cleaning up (stack, containers)")
            self.remove_cold()
            self.stack.stop()
            self.remove_networks(self.instance)

    def other_stack(self, sections: list[str], fn: Callable[[], None]) -> None:
        """Run ``fn`` (a stack of its own and its sections); a failure to start the
        stack is reported on each of its sections."""
        try:
            fn()
        except Exception as exc:
            traceback.print_exc()
            for name in sections:
                self.results.setdefault(name, {"error": f"{type(exc).__name__}: {exc}"})

    # -- the HTTPS stack: sections 4b and 6 -----------------------------------------------
    def https_stack(self) -> None:
        """The default front door: a stack behind a Caddy of its own (bench_proxy.py's
        set-up), so releases and pool builds include loading the slots' routes."""
        if not shutil.which("caddy"):
            run([str(ROOT / "infrastructure/scripts/ensure-caddy.sh")], timeout=600)
        instance = f"{self.instance}-https"
        b = self.port_base + 720
        caddy = CaddyProcess()
        caddy.start()
        stack = LiveStack(
            instance=instance, port_base=b, sizes="nginx=2,apache=0,python=0,node=0",
            extra_env={**caddy.env, **self.stack_env(), "PAAS_PORT_RANGES":
                       f"nginx={b}-{b + 99},apache={b + 100}-{b + 104},"
                       f"python={b + 105}-{b + 109},node={b + 110}-{b + 114}"},
            watcher=True, web_workers=self.stack.web_workers)
        stack.env["PAAS_PORT"] = str(stack.port)  # Caddy's upstream: this stack's gunicorn
        try:
            say(f"HTTPS stack {instance}: Caddy admin on {caddy.admin_port}")
            stack.manage("migrate", "--noinput")
            ensure_network(stack)
            stack.start()
            stack.manage("proxy", "sync", "--wait", "10")
            tokens = stack.create_users(["bench-https"], password=PASSWORD)
            # The API through the front door, as users reach it (gunicorn's own port
            # redirects to HTTPS when Caddy is on).
            client = Client(f"https://localhost:{caddy.https_port}", tokens["bench-https"])
            client.session.verify = str(caddy.root_cert)
            client.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
            db = SlotDB(stack.data_dir / "paas.sqlite3")
            self.section("release_to_idle_https",
                         lambda: self.release_to_idle_https(client, caddy, db))
            self.section("pool_init", lambda: self.pool_init(stack, caddy, db))
        finally:
            stack.stop()
            caddy.kill()
            self.remove_networks(instance)
            shutil.rmtree(caddy.dir, ignore_errors=True)
            if all("error" not in self.results.get(n, {}) for n in
                   ("release_to_idle_https", "pool_init")):
                shutil.rmtree(stack.data_dir, ignore_errors=True)

    # -- the PostgreSQL stack: the burst again ------------------------------------------
    def postgres_stack(self) -> None:
        """The burst on PostgreSQL (a throwaway server) with Redis for the broker and
        the throttle counts when redis-server is installed: the several-processes
        topology of the README, at BENCH_PG_WEB_WORKERS gunicorn workers."""
        s = self.sizes
        instance = f"{self.instance}-pg"
        b = self.port_base + 850
        use_redis = os.environ.get("BENCH_PG_REDIS", "1") != "0" and bool(
            shutil.which("redis-server"))
        workers = int(os.environ.get("BENCH_PG_WEB_WORKERS", str(self.stack.web_workers)))
        # A server's usual costs (on disk, every commit flushed) unless BENCH_PG_DURABLE=0.
        durable = os.environ.get("BENCH_PG_DURABLE", "1") != "0"
        with ExitStack() as cleanup:
            say("starting a throwaway PostgreSQL server" + (" and Redis" if use_redis else ""))
            url = cleanup.enter_context(throwaway_postgres(durable=durable))
            redis_url = cleanup.enter_context(throwaway_redis()) if use_redis else ""
            stack = LiveStack(
                instance=instance, port_base=b,
                sizes=f"nginx={s.burst_claims + s.margin},apache=0,python=0,node=0",
                extra_env={**self.stack_env(), "PAAS_DATABASE_URL": url,
                           "PAAS_REDIS_URL": redis_url, "PAAS_PORT_RANGES":
                           f"nginx={b}-{b + 249},apache={b + 250}-{b + 254},"
                           f"python={b + 255}-{b + 259},node={b + 260}-{b + 264}"},
                watcher=True, web_workers=workers)
            cleanup.callback(shutil.rmtree, stack.data_dir, ignore_errors=True)
            cleanup.callback(self.remove_networks, instance)
            cleanup.callback(stack.stop)
            stack.manage("migrate", "--noinput")
            ensure_network(stack)
            started = time.perf_counter()
            stack.start()
            start_s = time.perf_counter() - started
            names = [f"bench-pg-{i}" for i in range(s.burst_clients)]
            tokens = stack.create_users(names, password=PASSWORD)
            clients = [Client(stack.url, tokens[n]) for n in names]

            def burst() -> dict[str, Any]:
                settled = host_settle(timeout=s.settle_s)
                result, _ = burst_run(clients, s.burst_per_client,
                                      idle_before=pg_idle_count(url), web_port=stack.port)
                return {**result, **settled, "web_workers": workers, "redis": use_redis,
                        "stack_start_s": round(start_s, 1),
                        "database": "throwaway PostgreSQL (pg-throwaway.sh, " + (
                            "on disk, fsync and synchronous_commit on)" if durable else
                            "in memory, fsync and synchronous_commit off)")}

            self.section("burst_postgres", burst)

# --- the report ------------------------------------------------------------------------------
def lookup(sections: dict[str, Any], key: str) -> Any:
    value: Any = sections
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def evaluate(sections: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for t in TARGETS:
        if t.key.split(".")[0] not in sections:
            continue  # a stack left out (--only)
        value = lookup(sections, t.key)
        limit = t.limit
        if t.limit_key:
            base = lookup(sections, t.limit_key)
            limit = round(base + (t.limit or 0), 1) if isinstance(base, (int, float)) else None
        met: bool | None = None
        if isinstance(value, (int, float)) and t.op and limit is not None:
            met = {"<=": value <= limit, ">=": value >= limit, "==": value == limit}[t.op]
        target = ""
        if t.op:
            target = (f"{t.op} {limit:g} {t.unit}".strip() if limit is not None
                      else f"{t.op} ({t.limit_key} + {t.limit:g}: n/a)")
        rows.append({"key": t.key, "label": t.label, "value": value, "unit": t.unit,
                     "target": target, "limit": limit, "met": met})
    return rows


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    m = meta["machine"]
    lines = [
        f"Benchmark {meta['date']} ({meta['mode']} run, commit {meta.get('git') or '?'}) — "
        f"{m['nproc']} CPU ({m['cpu']}), {m['memory_gb']} GB RAM, Docker {m['docker']}, "
        f"kernel {m['kernel']}, Python {m['python']}; {meta['web']}; host load average "
        f"(1/5/15 min) {' '.join(meta.get('loadavg_before') or [])} before, "
        f"{' '.join(meta.get('loadavg_after') or [])} after",
        "",
        "| measure | value | target | result |",
        "|---|---:|---|---|",
    ]
    for row in report["targets"]:
        result = {True: "met", False: "**missed**", None: ""}[row["met"]]
        value = fmt(row["value"])
        if row["value"] is not None and row["unit"]:
            value += f" {row['unit']}"
        lines.append(f"| {row['label']} | {value} | {row['target']} | {result} |")
    lines += ["", *notes(report["sections"])]
    errors = {name: s["error"] for name, s in report["sections"].items() if "error" in s}
    if errors or meta.get("error"):
        lines.append("")
        for name, error in errors.items():
            lines.append(f"- section {name} failed: {error}")
        if meta.get("error"):
            lines.append(f"- run failed: {meta['error']}")
    return "\n".join(lines) + "\n"


def notes(sections: dict[str, Any]) -> list[str]:
    """How the figures were taken, where the table cannot say it."""
    out = []
    burst, lc, pg = sections.get("burst", {}), sections.get("locust", {}), sections.get(
        "burst_postgres", {})
    if "claims_per_s" in lc and "throughput_per_s" in burst:
        out.append(
            f"- Cross-check: locust ({lc.get('tool')}, {lc['users']} users × "
            f"{lc['cycles_per_user']} claim+release cycles, {lc['claims']} claims, "
            f"{lc['failures']} failures) measured {lc['claims_per_s']} claims/s, claim p50 "
            f"{lc['claim_p50_ms']} ms / p99 {lc['claim_p99_ms']} ms; bench.py's burst "
            f"({burst['claims']} claims by {burst['clients']} clients) "
            f"{burst['throughput_per_s']} claims/s, p50 {burst.get('p50_ms')} ms / p99 "
            f"{burst.get('p99_ms')} ms: ratio {lc.get('ratio_vs_burst')}. Locust's users "
            "also release (half its requests are DELETEs), so its claim rate is expected "
            "below the claim-only burst.")
    if "throughput_per_s" in pg:
        out.append(f"- PostgreSQL burst: {pg.get('database')}; gunicorn {pg.get('web_workers')}"
                   f" workers × 8 threads; Redis {'on' if pg.get('redis') else 'off'} "
                   "(broker and throttle counts).")
    for name, section in (("SQLite", burst), ("PostgreSQL", pg)):
        cpu = section.get("cpu_ms_per_claim")
        if cpu:
            out.append(f"- {name} burst, CPU per claim (ms): " + ", ".join(
                f"{k} {v}" for k, v in cpu.items()) + f"; cores {section.get('cores_busy_pct')}"
                f" % busy during it (before it the host was "
                f"{section.get('host_busy_pct_before')} % busy, after waiting "
                f"{section.get('host_settle_s')} s).")
    kill = sections.get("kill_recovery", {}).get("watcher", {})
    if "started_p50_ms" in kill:
        out.append(
            f"- Kill → served (p50 {kill.get('p50_ms')} ms), Docker's events, ms after the "
            f"kill: the old container's `die` {kill.get('die_p50_ms')}, its network released "
            f"{kill.get('released_p50_ms')}, the new container created "
            f"{kill.get('created_p50_ms')} and started {kill.get('started_p50_ms')}; the "
            f"slot assigned again {kill.get('slot_ready_p50_ms')}.")
    rec = sections.get("recycle", {})
    if "all_idle_again_s" in rec:
        out.append(f"- The burst's {rec['released']} slots released at once were idle again "
                   f"after {rec['all_idle_again_s']} s ({rec['recycled_per_s']} slots/s).")
    https = sections.get("release_to_idle_https", {})
    if "idle_p50_ms" in https:
        out.append(f"- Behind Caddy the slot itself was idle again after {https['idle_p50_ms']}"
                   " ms (p50); the row above waits for its new hostname to be served.")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--small", action="store_true",
                        help="tiny sizes (a smoke run, about a minute and a half)")
    parser.add_argument("--out-dir", default=str(ROOT / "bench-results"))
    parser.add_argument("--port-base", type=int, default=0,
                        help="first host port of the pools (default: a random block "
                             "above the ephemeral range)")
    parser.add_argument("--runtimes", default=",".join(ALL_RUNTIMES),
                        help="runtimes to include besides nginx (default: all four; the "
                             "python upload and the per-runtime memory need theirs)")
    parser.add_argument("--only", choices=SECTIONS, default="",
                        help="run only the stack that holds this section (e.g. "
                             "burst_postgres: a minute or two)")
    args = parser.parse_args(argv)
    runtimes = tuple(rt for rt in ALL_RUNTIMES if rt == "nginx" or rt in args.runtimes.split(","))

    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the stack and containers go away.
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Above the ephemeral range (32768-60999), so client sockets never take pool ports;
    # a block of 1100: the main stack's ports, then the HTTPS and PostgreSQL stacks'.
    port_base = args.port_base or 61000 + random.randint(0, 3) * 1100
    sizes = SMALL if args.small else FULL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas_project.settings")
    bench = Bench(sizes, small=args.small, port_base=port_base, runtimes=runtimes)
    report = bench.run(only=args.only)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = out_dir / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out_dir / "latest.md").write_text(table)
    print()
    print(table)
    say(f"wrote {json_path} and {out_dir / 'latest.md'}")
    failed = bool(report["meta"].get("error")) or any(
        "error" in s for s in report["sections"].values())
    if not failed:
        shutil.rmtree(bench.stack.data_dir, ignore_errors=True)
    else:
        say(f"kept the stack's logs in {bench.stack.data_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

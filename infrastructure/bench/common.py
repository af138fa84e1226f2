"""What the benchmarks beside it share: percentiles and summaries, the logger, a
subprocess runner, loopback HTTP probes, process memory, the API client (one user's
keep-alive connection) and a read-only look at a stack's SQLite slots table.

Import it from a module in this directory (``from common import Client, summary_ms``):
the benchmarks run as scripts, so this directory is first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import re
import select
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[2]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 samples is the 198th)."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def summary_ms(samples_s: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
    }


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(cmd: list[str], *, check: bool = True, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout,
                          cwd=ROOT, env=env)


def http_text(port: int, path: str = "/", timeout: float = 1.0) -> tuple[int, str]:
    """(status, body) of GET 127.0.0.1:port/path; (0, error) when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "paas-bench", "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc)
    finally:
        conn.close()


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.01) -> float:
    """Poll ``check`` until true; return the seconds it took. TimeoutError otherwise."""
    start = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"condition not met within {timeout:.0f}s")
        time.sleep(interval)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def docker_mem_mib(container_id: str) -> tuple[float, str]:
    """The container's memory use in MiB as ``docker stats`` computes it (usage minus
    inactive page cache), and where it came from. Where ``docker stats`` has no numbers
    (it answers "0B / 0B" on some hosts) the same formula is read from the cgroup."""
    out = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}",
               container_id]).stdout.strip()
    match = re.match(r"([\d.]+)\s*([KMG]i?B|B)", out)
    if match and float(match.group(1)) > 0:
        factor = {"B": 1 / 2**20, "KiB": 1 / 1024, "kB": 1 / 1024, "KB": 1 / 1024,
                  "MiB": 1.0, "MB": 1.0, "GiB": 1024.0, "GB": 1024.0}[match.group(2)]
        return round(float(match.group(1)) * factor, 2), "docker stats"
    full = run(["docker", "inspect", "-f", "{{.Id}}", container_id]).stdout.strip()
    for usage_file, stat_file, inactive in (
        (f"/sys/fs/cgroup/memory/docker/{full}/memory.usage_in_bytes",
         f"/sys/fs/cgroup/memory/docker/{full}/memory.stat", "total_inactive_file"),
        (f"/sys/fs/cgroup/system.slice/docker-{full}.scope/memory.current",
         f"/sys/fs/cgroup/system.slice/docker-{full}.scope/memory.stat", "inactive_file"),
    ):
        try:
            usage = int(Path(usage_file).read_text())
            stats = dict(line.split() for line in Path(stat_file).read_text().splitlines())
        except OSError:
            continue
        used = usage - int(stats.get(inactive, 0))
        return round(used / 2**20, 2), "cgroup (docker stats answered " + repr(out) + ")"
    raise ValueError(f"no memory figure for {container_id}: docker stats said {out!r}")


def process_groups_pss(pgids: dict[str, int]) -> dict[str, Any]:
    """Sum PSS/RSS (from /proc/<pid>/smaps_rollup) of every process in each group."""
    groups: dict[str, dict[str, Any]] = {
        name: {"pss_kb": 0, "rss_kb": 0, "processes": 0} for name in pgids}
    by_pgid = {pgid: name for name, pgid in pgids.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # pgrp is the 3rd field after "(comm)"; comm may contain spaces.
            pgrp = int(stat.rsplit(")", 1)[1].split()[2])
            if pgrp not in by_pgid:
                continue
            rollup = (entry / "smaps_rollup").read_text()
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
        fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", rollup, re.MULTILINE))
        group = groups[by_pgid[pgrp]]
        group["pss_kb"] += int(fields.get("Pss", 0))
        group["rss_kb"] += int(fields.get("Rss", 0))
        group["processes"] += 1
    return groups


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    docker = run(["docker", "version", "--format", "{{.Server.Version}}"],
                 check=False).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 2**20, 1),
        "docker": docker,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# --- the client side of the API ------------------------------------------------------------
# What a call of Client may raise (requests' errors are OSErrors too).
CLIENT_ERRORS = (OSError, http.client.HTTPException)


class Client:
    """One keep-alive HTTP session as one user. The hand-out calls (claim, list, release)
    go over one kept ``http.client`` connection when the base is plain HTTP: through
    ``requests`` they cost a burst's 32 client threads about 1.15 ms of CPU per claim,
    on the same two cores as the platform they measure. ``session`` (requests) serves
    the rest: uploads, HTTPS with its own root certificate."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        url = urlsplit(base)
        self.lean = url.scheme == "http"
        self._address = (url.hostname or "127.0.0.1", url.port or 80)
        self._local = threading.local()  # a connection per thread (a release burst shares us)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                         "Content-Type": "application/json"}

    def call(self, method: str, path: str,
             body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer or {}). Errors are OSError or http.client's."""
        if not self.lean:
            resp = self.session.request(method, self.base + path, json=body, timeout=30)
            ctype, data = resp.headers.get("content-type", ""), resp.content
            status = resp.status_code
        else:
            status, ctype, data = self._lean(method, path, body)
        return status, json.loads(data) if data and ctype.startswith("application/json") else {}

    def _lean(self, method: str, path: str,
              body: dict[str, Any] | None) -> tuple[int, str, bytes]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(*self._address, timeout=30)
        # The server closes a connection idle past its keep-alive: that shows as readable.
        if conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
            conn.close()  # http.client opens a new one on the next request
        try:
            conn.request(method, path, headers=self._headers,
                         body=None if body is None else json.dumps(body))
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        return resp.status, resp.getheader("content-type", ""), data

    def warm(self) -> None:
        """Open the keep-alive connection (before a clock starts)."""
        status, _ = self.call("GET", "/api/runtimes/")
        if status != 200:
            raise RuntimeError(f"GET /api/runtimes/ answered {status}")

    def claim(self, runtime: str = "nginx") -> tuple[float, int, dict[str, Any]]:
        start = time.perf_counter()
        status, body = self.call("POST", "/api/deployments/", {"runtime": runtime})
        return time.perf_counter() - start, status, body

    def claim_ok(self, runtime: str = "nginx") -> dict[str, Any]:
        _, code, body = self.claim(runtime)
        if code != 201:
            raise RuntimeError(f"claim of {runtime} answered {code}: {body}")
        return body

    def list_deployments(self) -> tuple[float, int]:
        """GET /api/deployments/: (seconds, status). The cheapest authenticated request,
        the claim's yardstick when the user has no deployments."""
        start = time.perf_counter()
        status, _ = self.call("GET", "/api/deployments/")
        return time.perf_counter() - start, status

    def release(self, deployment_id: int) -> float:
        start = time.perf_counter()
        status, body = self.call("DELETE", f"/api/deployments/{deployment_id}/")
        if status != 204:
            raise RuntimeError(f"release answered {status}: {body}")
        return time.perf_counter() - start

    def upload(self, deployment_id: int, name: str, data: bytes) -> float:
        start = time.perf_counter()
        resp = self.session.post(f"{self.base}/api/deployments/{deployment_id}/files/",
                                 files={"file": (name, data)}, timeout=60)
        if resp.status_code != 201:
            raise RuntimeError(f"upload answered {resp.status_code}: {resp.text[:300]}")
        return time.perf_counter() - start


class SlotDB:
    """Read-only look at the slots table of the stack's SQLite file: the pool status
    straight from the database, cheap enough to poll every 10 ms."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10,
                                    check_same_thread=False)
        self.lock = threading.Lock()

    def slot(self, port: int) -> dict[str, Any]:
        with self.lock:
            row = self.conn.execute(
                "SELECT id, status, generation, container_id, slug FROM pools_poolcontainer "
                "WHERE port = ?", (port,)).fetchone()
        if row is None:
            raise LookupError(f"no slot on port {port}")
        return {"id": row[0], "status": row[1], "generation": row[2], "container_id": row[3],
                "slug": row[4]}

    def ports(self) -> list[int]:
        with self.lock:
            return [int(r[0]) for r in
                    self.conn.execute("SELECT port FROM pools_poolcontainer").fetchall()]

    def idle_container(self, runtime: str) -> str:
        with self.lock:
            row = self.conn.execute(
                "SELECT s.container_id FROM pools_poolcontainer s JOIN pools_runtime r "
                "ON r.id = s.runtime_id WHERE r.name = ? AND s.status = 'idle' "
                "AND s.container_id != '' ORDER BY s.port LIMIT 1", (runtime,)).fetchone()
        if row is None:
            raise LookupError(f"no idle {runtime} slot")
        return str(row[0])

    def counts(self) -> dict[str, int]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT status, COUNT(*) FROM pools_poolcontainer GROUP BY status").fetchall()
        return {str(status): int(n) for status, n in rows}


def loadavg() -> list[str]:
    """The host's 1/5/15-minute load average: other work on the host skews every number."""
    return Path("/proc/loadavg").read_text().split()[:3]


def script_main(argv: list[str] | None, *, name: str, description: str, port_blocks: int,
                make: Callable[[bool, int], Any]) -> int:
    """The entry point of a benchmark script that runs one stack (arrival.py, curves.py):
    ``make(small, port_base)`` builds it, its ``run()`` gives the report, written to
    ``<out-dir>/<name>-<date>.json``; 1 when the report says it failed (the stack's data
    dir is then kept for its logs)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", help="the smoke-sized run")
    parser.add_argument("--out-dir", default=str(ROOT / "bench-results"))
    # `make bench` passes the same BENCH_ARGS to every script; ignore bench.py's others.
    args, _ = parser.parse_known_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # the stack's cleanup runs as on Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    # Above the ephemeral range (32768-60999), so client sockets never take pool ports.
    bench = make(args.small, 61000 + random.randint(0, port_blocks) * 200)
    report = bench.run()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {path}")
    if report["meta"].get("error"):
        say(f"{name} failed: {report['meta']['error']}; logs in {bench.stack.data_dir}")
        return 1
    shutil.rmtree(bench.stack.data_dir, ignore_errors=True)
    return 0

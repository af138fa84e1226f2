#!/usr/bin/env python3
"""Scaling curves (issue 15): how claims, pool init and memory change with size.

``.venv/bin/python infrastructure/bench/curves.py [--small]`` starts a live stack of its
own (fixed pools, like ``bench.py``, so a curve's point is comparable to its burst) and
walks one nginx pool up through the sizes:

  memory   PSS of web + cluster + watcher at 10, 100 and 400 slots
  init     ``manage.py pool add nginx N`` wall time for N = 10, 40, 160 on the running
           stack (the slots in between are added unmeasured)
  claims   claims/s, p50 and p99 with 1, 8, 32 and 64 concurrent clients (keep-alive, one
           user each), every level started on at least 200 idle slots: claims of the
           previous levels are released first and their slots recycled

Writes ``bench-results/curves-<date>.json``; ``infrastructure/bench/report.py`` turns it
into tables and a chart in docs/BENCHMARKS.md. Asserts nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (  # noqa: E402
    CLIENT_ERRORS,
    Client,
    SlotDB,
    machine_info,
    process_groups_pss,
    run,
    say,
    summary_ms,
    wait_until,
)
from common import script_main  # noqa: E402

from tests.live import LiveStack  # noqa: E402

PASSWORD = "curves-Secret-123"
# Slot states in which a build task works on the slot (pools.states.BUSY, which needs
# Django loaded to import).
BUSY = ("provisioning", "recycling", "recovering")


@dataclass(frozen=True)
class CurveSizes:
    clients: tuple[int, ...]
    claims_per_level: int  # about this many claims at each client count
    idle_floor: int  # every claims level starts on at least this many idle slots
    init_counts: tuple[int, ...]
    memory_slots: tuple[int, ...]  # ascending; the first is the stack's starting size


FULL = CurveSizes(clients=(1, 8, 32, 64), claims_per_level=200, idle_floor=200,
                  init_counts=(10, 40, 160), memory_slots=(10, 100, 400))
SMALL = CurveSizes(clients=(1, 2, 4), claims_per_level=4, idle_floor=4,
                   init_counts=(1, 2), memory_slots=(2, 6))


def per_client(sizes: CurveSizes, clients: int) -> int:
    return max(1, math.ceil(sizes.claims_per_level / clients))


class Curves:
    def __init__(self, sizes: CurveSizes, *, port_base: int) -> None:
        self.sizes = sizes
        self.instance = f"curves-{os.getpid()}{random.randint(100, 999)}"
        top = port_base + max(sizes.memory_slots[-1], sizes.idle_floor
                              + sum(sizes.init_counts)) + 40
        self.stack = LiveStack(
            instance=self.instance, port_base=port_base,
            sizes=f"nginx={sizes.memory_slots[0]},apache=0,python=0,node=0",
            extra_env={
                "PAAS_PORT_RANGES": f"nginx={port_base}-{top},apache={top + 1}-{top + 2},"
                                    f"python={top + 3}-{top + 4},node={top + 5}-{top + 6}",
                "PAAS_USER_QUOTA": "1000",
                "PAAS_ACCESS_TOKEN_MINUTES": "600",
                "PAAS_MONITOR_INTERVAL": "3600",
                "PAAS_LOG_LEVEL": "WARNING",
            },
            watcher=True, web_workers=int(os.environ.get("BENCH_WEB_WORKERS", "2")),
        )
        self.total = sizes.memory_slots[0]
        self.held: list[tuple[str, int]] = []  # (user, deployment id) claimed so far
        self.tokens: dict[str, str] = {}
        self.db: SlotDB | None = None

    # -- driving -----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "sizes": asdict(self.sizes), "machine": machine_info(),
            "git": run(["git", "rev-parse", "--short", "HEAD"], check=False).stdout.strip(),
            "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
            "web": f"gunicorn gthread (balanced accept), {self.stack.web_workers} workers x 8 threads",
            "database": "SQLite",
        }
        results: dict[str, Any] = {"memory": [], "init": [], "claims": []}
        started = time.perf_counter()
        try:
            self.setup()
            self.grow(results)
            for clients in self.sizes.clients:
                results["claims"].append(self.claims(clients))
                say(f"curves: claims {results['claims'][-1]}")
        except Exception as exc:  # reported, and the stack still goes away
            meta["error"] = f"{type(exc).__name__}: {exc}"
            meta["web_log_tail"] = self.stack.log("web")[-3000:]
        finally:
            self.stack.stop()
            left = run(["docker", "ps", "-aq", "--filter",
                        f"label=paas.instance={self.instance}"], check=False).stdout.split()
            meta["containers_left"] = len(left)
            meta["total_s"] = round(time.perf_counter() - started, 1)
            meta["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        return {"meta": meta, "curves": results}

    def setup(self) -> None:
        say(f"curves: instance {self.instance}, data dir {self.stack.data_dir}")
        self.stack.manage("migrate", "--noinput")
        build = self.stack.manage("pool", "build-images", "nginx", check=False)
        if build.returncode != 0:
            raise RuntimeError("pool build-images failed:\n" + build.stderr[-2000:])
        # Made before `pool init` creates containers in parallel (see bench.py's set-up).
        self.stack.manage("shell", "-c", "from pools.services import ensure_network; "
                          "ensure_network()")
        self.stack.start()
        self.db = SlotDB(self.stack.data_dir / "paas.sqlite3")
        names = [f"curve-{i}" for i in range(max(self.sizes.clients))]
        self.tokens = self.stack.create_users(names, password=PASSWORD)

    def grow(self, results: dict[str, Any]) -> None:
        """Walk the pool up: memory at each of its sizes, the init counts in between."""
        inits = list(self.sizes.init_counts)
        for slots in self.sizes.memory_slots:
            while inits and self.total + inits[0] <= slots:
                results["init"].append(self.init(inits.pop(0)))
            if slots > self.total:
                self.add(slots - self.total)
            results["memory"].append(self.memory())
            say(f"curves: memory {results['memory'][-1]}")
        for count in inits:
            results["init"].append(self.init(count))

    # -- pool init -----------------------------------------------------------------------
    def add(self, count: int) -> float:
        start = time.perf_counter()
        cmd = run([sys.executable, "manage.py", "pool", "add", "nginx", str(count)],
                  env=self.stack.env, timeout=1800)
        wall = time.perf_counter() - start
        ready = len(re.findall(r"\[\d+/\d+\] slot \d+ ready", cmd.stdout))
        if ready != count:
            failed = re.findall(r"\[\d+/\d+\] slot \d+ not ready.*", cmd.stdout) or [""]
            raise RuntimeError(f"only {ready}/{count} containers ready; {failed[0][:300]}")
        self.total += count
        return wall

    def init(self, count: int) -> dict[str, Any]:
        wall = self.add(count)
        result = {"containers": count, "pool_before": self.total - count,
                  "wall_s": round(wall, 2), "containers_per_s": round(count / wall, 2)}
        say(f"curves: init {result}")
        return result

    # -- memory -----------------------------------------------------------------------
    def memory(self) -> dict[str, Any]:
        groups = process_groups_pss({name: proc.pid for name, proc in self.stack.procs.items()})
        return {"slots": self.total,
                "platform_pss_mb": round(sum(g["pss_kb"] for g in groups.values()) / 1024, 1),
                "groups_pss_mb": {name: round(g["pss_kb"] / 1024, 1)
                                  for name, g in groups.items()}}

    # -- claims -----------------------------------------------------------------------
    def claims(self, clients: int) -> dict[str, Any]:
        each = per_client(self.sizes, clients)
        idle_before = self.make_idle(max(self.sizes.idle_floor, clients * each))
        sessions = [Client(self.stack.url, self.tokens[f"curve-{i}"]) for i in range(clients)]
        samples = self.burst(sessions, each)
        ok = [lat for _, lat, code, _ in samples if code == 201]
        wall = (max(start + lat for start, lat, _, _ in samples)
                - min(start for start, _, _, _ in samples))
        summary = summary_ms(ok) if ok else {}
        return {"clients": clients, "claims": len(samples), "idle_before": idle_before,
                "errors": len(samples) - len(ok), "wall_s": round(wall, 3),
                "claims_per_s": round(len(ok) / wall, 1), **summary,
                "p99_over_mean": round(summary["p99_ms"] / summary["mean_ms"], 2)
                if summary else None}

    def burst(self, sessions: list[Client], each: int) -> list[tuple[float, float, int, str]]:
        """Every client claims ``each`` times, all starting together."""
        barrier = threading.Barrier(len(sessions))
        samples: list[tuple[float, float, int, str]] = []  # start, latency, status, user
        lock = threading.Lock()

        def worker(index: int) -> None:
            mine = []
            sessions[index].warm()  # this thread's keep-alive connection, before the clock
            barrier.wait()
            for _ in range(each):
                start = time.perf_counter()
                try:
                    elapsed, code, body = sessions[index].claim("nginx")
                except CLIENT_ERRORS:
                    elapsed, code, body = time.perf_counter() - start, 0, {}
                mine.append((start, elapsed, code, f"curve-{index}"))
                if code == 201:
                    with lock:
                        self.held.append((f"curve-{index}", int(body["id"])))
            with lock:
                samples.extend(mine)

        with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
            list(pool.map(worker, range(len(sessions))))
        return samples

    def make_idle(self, wanted: int) -> int:
        """Release what earlier levels claimed when fewer than ``wanted`` slots are idle,
        and wait until every recycling has ended (so none competes with the claims);
        then the idle count."""
        assert self.db is not None
        db = self.db
        if db.counts().get("idle", 0) < wanted:
            self.release_held()
            if self.total < wanted:
                self.add(wanted - self.total)

            def enough() -> bool:
                counts = db.counts()
                return counts.get("idle", 0) >= wanted and not any(
                    counts.get(status) for status in BUSY)

            say(f"curves: waiting for {wanted} idle slots")
            wait_until(enough, timeout=1200, interval=0.5)
        return db.counts().get("idle", 0)

    def release_held(self) -> None:
        def release(item: tuple[str, int]) -> None:
            Client(self.stack.url, self.tokens[item[0]]).release(item[1])

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(release, self.held))
        self.held = []


def main(argv: list[str] | None = None) -> int:
    # The widest pool (400 and a margin) still ends below 65536.
    return script_main(argv, name="curves", description="Scaling curves (issue 15).",
                       port_blocks=15, make=lambda small, port_base: Curves(
                           SMALL if small else FULL, port_base=port_base))


if __name__ == "__main__":
    sys.exit(main())

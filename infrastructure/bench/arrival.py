#!/usr/bin/env python3
"""The arrival wave (issue 13): a class larger than the warm pool arrives at once.

``.venv/bin/python infrastructure/bench/arrival.py [--small]`` starts a live stack of its
own with elastic pools on (``PAAS_ELASTIC=true``, the default) and launches that may wait
(``PAAS_CLAIM_WAIT``), nginx at ``min_idle`` 5 and a short ``idle_ttl``. Then N users
(tokens minted directly, not through the throttled login) each launch once, their
starts spread evenly over a few seconds. Each user's clock runs from its first request
until its container answers HTTP on its URL: a 201 is polled at its port at once, a 202
(pending) is polled until it turns running, a 503 with ``Retry-After`` is retried after
that many seconds (counted). Afterwards every user releases, and the wave reports how
long the pool takes to shrink back to ``min_idle``.

Writes ``bench-results/arrival-<date>.json``; the report generator
(``infrastructure/bench/report.py``) puts it into docs/BENCHMARKS.md. Asserts nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import http_text, machine_info, run, say, summary_ms  # noqa: E402
from common import script_main  # noqa: E402

from tests.live import LiveStack  # noqa: E402

PASSWORD = "arrival-Secret-123"
# A user who is not served within this many seconds gives up (the target is 30 s).
USER_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class WaveSizes:
    users: int
    spread_s: float  # the users' starts are spread evenly over this many seconds
    min_idle: int
    idle_ttl_s: int
    shrink_timeout_s: float  # how long to watch for the shrink back to min_idle


FULL = WaveSizes(users=100, spread_s=10.0, min_idle=5, idle_ttl_s=10, shrink_timeout_s=240)
SMALL = WaveSizes(users=8, spread_s=1.0, min_idle=2, idle_ttl_s=5, shrink_timeout_s=0)


@dataclass
class Visit:
    """One user's launch, from the first request to a serving URL."""
    user: str
    first_code: int = 0
    codes: list[int] = field(default_factory=list)
    retries: int = 0  # 503 with Retry-After, tried again
    pending: bool = False  # answered 202, later running
    polls: int = 0
    given_up: bool = False  # pending until the platform gave up (ended not_served)
    served_s: float | None = None
    error: str = ""
    deployment: int | None = None


def launch(base: str, token: str, visit: Visit) -> None:
    """Launch, wait for a running deployment, then for its URL to answer HTTP."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    start = time.perf_counter()
    deadline = start + USER_TIMEOUT_S
    body = _claim(session, base, visit, deadline)
    if body is None:
        return
    visit.deployment = int(body["id"])
    while body.get("status") != "running":
        if body.get("status") in ("failed", "released"):
            # "released" while pending: the launch waited PAAS_CLAIM_WAIT and was given up
            visit.error = f"deployment {body.get('status')} after {visit.polls} polls"
            visit.given_up = True
            return
        if time.perf_counter() > deadline:
            visit.error = f"still {body.get('status')} after {visit.polls} polls"
            return
        time.sleep(0.25)
        visit.polls += 1
        resp = session.get(f"{base}/api/deployments/{visit.deployment}/", timeout=30)
        visit.codes.append(resp.status_code)
        body = resp.json()
    port = int(body["port"])
    while http_text(port, "/", timeout=1.0)[0] == 0:
        if time.perf_counter() > deadline:
            visit.error = f"port {port} did not answer"
            return
        time.sleep(0.02)
    visit.served_s = time.perf_counter() - start


def _claim(session: requests.Session, base: str, visit: Visit,
           deadline: float) -> dict[str, Any] | None:
    """POST until 201/202; 503 with Retry-After waits and tries again."""
    while time.perf_counter() < deadline:
        resp = session.post(f"{base}/api/deployments/", json={"runtime": "nginx"}, timeout=60)
        visit.codes.append(resp.status_code)
        visit.first_code = visit.first_code or resp.status_code
        if resp.status_code in (201, 202):
            visit.pending = resp.status_code == 202
            return dict(resp.json())
        retry_after = resp.headers.get("Retry-After")
        if resp.status_code != 503 or retry_after is None:
            visit.error = f"answered {resp.status_code}: {resp.text[:200]}"
            return None
        visit.retries += 1
        time.sleep(float(retry_after))
    visit.error = "no deployment before the user's timeout"
    return None


class Counter:
    """Samples the instance's containers (docker ps by label) until stopped: the peak."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def count(self) -> int:
        out = run(["docker", "ps", "-q", "--filter", f"label=paas.instance={self.instance}"],
                  check=False).stdout
        return len(out.split())

    def loop(self) -> None:
        start = time.perf_counter()
        while not self.stop_event.is_set():
            n = self.count()
            self.peak = max(self.peak, n)
            self.samples.append((round(time.perf_counter() - start, 1), n))
            self.stop_event.wait(0.5)

    def __enter__(self) -> Counter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join()
        self.peak = max(self.peak, self.count())  # the last builds may end after a sample


class Wave:
    def __init__(self, sizes: WaveSizes, *, port_base: int) -> None:
        self.sizes = sizes
        self.instance = f"arrival-{os.getpid()}{random.randint(100, 999)}"
        top = port_base + sizes.users + 60
        self.stack = LiveStack(
            instance=self.instance, port_base=port_base,
            sizes=f"nginx={sizes.min_idle},apache=0,python=0,node=0",
            extra_env={
                "PAAS_PORT_RANGES": f"nginx={port_base}-{top},apache={top + 1}-{top + 2},"
                                    f"python={top + 3}-{top + 4},node={top + 5}-{top + 6}",
                "PAAS_ELASTIC": "true",
                "PAAS_CLAIM_WAIT": os.environ.get("ARRIVAL_CLAIM_WAIT", "60"),
                "PAAS_USER_QUOTA": "10",
                "PAAS_ACCESS_TOKEN_MINUTES": "600",
                "PAAS_LOG_LEVEL": "WARNING",
            },
            watcher=True, web_workers=int(os.environ.get("BENCH_WEB_WORKERS", "2")),
        )

    def run(self) -> dict[str, Any]:
        s = self.sizes
        meta: dict[str, Any] = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "sizes": asdict(s), "machine": machine_info(),
            "git": run(["git", "rev-parse", "--short", "HEAD"], check=False).stdout.strip(),
            "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
            "settings": {k: self.stack.env[k] for k in (
                "PAAS_ELASTIC", "PAAS_CLAIM_WAIT", "PAAS_MONITOR_INTERVAL", "PAAS_POOL_SIZES")},
        }
        result: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            self.setup()
            result = self.wave()
            say(f"arrival: served {result['served']}/{result['users']}, p95 "
                f"{result.get('p95_ms')} ms, peak {result['peak_containers']} containers; "
                "releasing and watching the shrink")
            result["shrink"] = self.shrink()
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
        return {"meta": meta, "arrival": result}

    def setup(self) -> None:
        s = self.sizes
        say(f"arrival: instance {self.instance}, data dir {self.stack.data_dir}")
        self.stack.manage("migrate", "--noinput")
        build = self.stack.manage("pool", "build-images", "nginx", check=False)
        if build.returncode != 0:
            raise RuntimeError("pool build-images failed:\n" + build.stderr[-2000:])
        self.stack.manage("pool", "set-policy", "nginx", "--idle-ttl", str(s.idle_ttl_s))
        self.stack.manage("shell", "-c", "from pools.services import ensure_network; "
                          "ensure_network()")
        self.stack.start()
        self.tokens = self.stack.create_users([f"wave-{i}" for i in range(s.users)],
                                              password=PASSWORD)

    def wave(self) -> dict[str, Any]:
        s = self.sizes
        visits = [Visit(user=f"wave-{i}") for i in range(s.users)]
        gap = s.spread_s / max(1, s.users - 1) if s.users > 1 else 0.0
        say(f"arrival: {s.users} users over {s.spread_s} s on min_idle {s.min_idle}")
        threads: list[threading.Thread] = []
        with Counter(self.instance) as counter:
            wave_start = time.perf_counter()
            for i, visit in enumerate(visits):
                time.sleep(max(0.0, wave_start + i * gap - time.perf_counter()))
                thread = threading.Thread(target=launch, args=(
                    self.stack.url, self.tokens[visit.user], visit), daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join(USER_TIMEOUT_S + 60)
            wave_s = time.perf_counter() - wave_start
        self.visits = visits
        # (seconds into the wave, containers): the build rate the wave got, for the JSON
        return {**summarize(visits, peak=counter.peak, wave_s=wave_s),
                "containers_timeline": counter.samples[::2]}

    def shrink(self) -> dict[str, Any]:
        """Every user releases; how long until the pool holds ``min_idle`` containers."""
        s = self.sizes
        if s.shrink_timeout_s <= 0:
            return {"measured": False, "why": "small run (the pass comes every minute)"}
        for visit in self.visits:
            if visit.deployment is not None:
                requests.delete(f"{self.stack.url}/api/deployments/{visit.deployment}/",
                                headers={"Authorization": f"Bearer {self.tokens[visit.user]}"},
                                timeout=30)
        counter = Counter(self.instance)
        start = time.perf_counter()
        while time.perf_counter() - start < s.shrink_timeout_s:
            if counter.count() <= s.min_idle:
                return {"measured": True, "idle_ttl_s": s.idle_ttl_s,
                        "seconds": round(time.perf_counter() - start, 1)}
            time.sleep(1.0)
        return {"measured": True, "idle_ttl_s": s.idle_ttl_s, "seconds": None,
                "containers_at_timeout": counter.count()}


def summarize(visits: list[Visit], *, peak: int, wave_s: float) -> dict[str, Any]:
    served = [v.served_s for v in visits if v.served_s is not None]
    codes: dict[str, int] = {}
    for v in visits:
        for code in v.codes:
            codes[str(code)] = codes.get(str(code), 0) + 1
    bad_5xx = sum(n for code, n in codes.items() if code.startswith("5") and code != "503")
    out: dict[str, Any] = {
        "users": len(visits), "served": len(served), "wave_s": round(wave_s, 1),
        "within_30s": sum(1 for t in served if t <= 30),
        "first_answer": {"201": sum(v.first_code == 201 for v in visits),
                         "202": sum(v.first_code == 202 for v in visits),
                         "503": sum(v.first_code == 503 for v in visits)},
        "retries_after_503": sum(v.retries for v in visits),
        "pending_turned_running": sum(v.pending and v.served_s is not None for v in visits),
        "pending_given_up": sum(v.given_up for v in visits),
        "status_codes": codes, "bad_5xx": bad_5xx, "peak_containers": peak,
        "errors": [f"{v.user}: {v.error}" for v in visits if v.error][:10],
    }
    if served:
        out.update({k: v for k, v in summary_ms(served).items() if k != "n"})
    return out


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, name="arrival", description="The arrival wave (issue 13).",
                       port_blocks=20, make=lambda small, port_base: Wave(
                           SMALL if small else FULL, port_base=port_base))


if __name__ == "__main__":
    sys.exit(main())

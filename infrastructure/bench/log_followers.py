#!/usr/bin/env python3
"""Claim latency with and without live-log followers (issue 14).

Starts its own live stack (tests/live.py: gunicorn, the django-q2 cluster, the watcher)
under its own instance label, then measures sequential claims (POST /api/deployments/,
p50) twice: alone, and while ``--followers`` clients poll the logs of ``--owners``
python deployments every second with a cursor, as the deployment page does. Prints both
p50s and their ratio (the target: within 30 %); asserts nothing. Removes every container
it made.

    .venv/bin/python infrastructure/bench/log_followers.py [--followers 50] [--claims 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.live import LiveStack  # noqa: E402

PASSWORD = "Follow-the-logs-42!"
WARMUP = 3  # claims before the first measured phase
TICKER = (b"import time\nfrom http.server import HTTPServer, SimpleHTTPRequestHandler\n"
          b"import threading, os\n"
          b"def tick():\n    n = 0\n    while True:\n        n += 1\n"
          b"        print('tick', n, flush=True)\n        time.sleep(0.2)\n"
          b"threading.Thread(target=tick, daemon=True).start()\n"
          b"HTTPServer(('', int(os.environ['PORT'])), SimpleHTTPRequestHandler).serve_forever()\n")


def session(stack: LiveStack, name: str) -> requests.Session:
    http = requests.Session()
    http.post(f"{stack.url}/api/auth/register/", timeout=30, json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD})
    token = http.post(f"{stack.url}/api/auth/token/", timeout=30, json={
        "username": name, "password": PASSWORD}).json()["access"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def claims_p50(stack: LiveStack, http: requests.Session, count: int) -> tuple[float, list[int]]:
    latencies, ids = [], []
    for _ in range(count):
        started = time.perf_counter()
        answer = http.post(f"{stack.url}/api/deployments/", json={"runtime": "nginx"},
                           timeout=30)
        latencies.append(time.perf_counter() - started)
        if answer.status_code != 201:
            raise RuntimeError(f"claim answered {answer.status_code}: {answer.text[:200]}")
        ids.append(answer.json()["id"])
    return statistics.median(latencies) * 1000, ids


def follow(stack: LiveStack, http: requests.Session, deployment_id: int,
           stop: threading.Event, counts: dict[str, int], lock: threading.Lock) -> None:
    cursor = ""
    url = f"{stack.url}/api/deployments/{deployment_id}/logs/"
    while not stop.is_set():
        try:
            answer = http.get(url, params={"since": cursor} if cursor else {}, timeout=30)
        except requests.RequestException:
            with lock:
                counts["error"] = counts.get("error", 0) + 1
            stop.wait(1.0)
            continue
        with lock:
            counts[str(answer.status_code)] = counts.get(str(answer.status_code), 0) + 1
        if answer.ok:
            cursor = answer.json()["cursor"] or cursor
            with lock:
                counts["lines"] = counts.get("lines", 0) + len(answer.json()["lines"])
        stop.wait(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--owners", type=int, default=5, help="python deployments followed")
    parser.add_argument("--claims", type=int, default=30, help="claims per phase")
    parser.add_argument("--port-base", type=int, default=36000)
    args = parser.parse_args()
    instance = f"bench-logs-{os.getpid()}"
    sizes = f"nginx={2 * args.claims + WARMUP},apache=0,python={args.owners},node=0"
    env = {"PAAS_USER_QUOTA": "1000", "PAAS_AUTH_THROTTLE": "100000/min",
           "PAAS_MONITOR_INTERVAL": "3600", "PAAS_LOG_LEVEL": "WARNING",
           "PAAS_ACCESS_TOKEN_MINUTES": "600", "PAAS_CREATE_PARALLEL": "8"}
    with LiveStack(instance=instance, port_base=args.port_base, sizes=sizes,
                   extra_env=env) as stack:
        owners = [session(stack, f"owner{i}") for i in range(args.owners)]
        followed = []
        for http in owners:
            deployment = http.post(f"{stack.url}/api/deployments/", json={"runtime": "python"},
                                   timeout=30).json()
            http.post(f"{stack.url}/api/deployments/{deployment['id']}/files/",
                      files={"file": ("app.py", TICKER)}, timeout=60).raise_for_status()
            followed.append((http, deployment["id"]))
        claimer = session(stack, "claimer")
        claims_p50(stack, claimer, WARMUP)
        alone, _ = claims_p50(stack, claimer, args.claims)
        stop, lock = threading.Event(), threading.Lock()
        counts: dict[str, int] = {}
        threads = [threading.Thread(target=follow, args=(
            stack, *followed[i % len(followed)], stop, counts, lock), daemon=True)
            for i in range(args.followers)]
        for thread in threads:
            thread.start()
        time.sleep(3)  # every follower is polling
        try:
            crowded, _ = claims_p50(stack, claimer, args.claims)
        finally:
            stop.set()
        for thread in threads:
            thread.join(timeout=35)
        result = {"claims_per_phase": args.claims, "followers": args.followers,
                  "followed_containers": args.owners, "claim_p50_ms_alone": round(alone, 1),
                  "claim_p50_ms_with_followers": round(crowded, 1),
                  "ratio": round(crowded / alone, 2), "follower_answers": counts,
                  "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

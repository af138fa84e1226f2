#!/usr/bin/env python3
"""The front door's benchmark (part of ``make bench``): a live stack behind a Caddy of its
own (own instance, data dir, admin/HTTPS ports, internal CA), then

  1 claim_to_https   POST /api/deployments/ -> first 200 from https://<slug>.apps.localhost
  2 alias_to_live    PATCH {alias} -> first 200 from https://<alias>.apps.localhost
                     (a background task and one Caddy config load)
  3 proxy_overhead   one static file, sequential GETs on one kept-alive connection each:
                     through Caddy (HTTPS, HTTP/1.1) vs the container's port (HTTP),
                     interleaved in the same run; latency and requests/s

Writes ``bench-results/proxy-<date>.json`` and prints a markdown table. Asserts nothing.
``--small`` is the smoke-sized run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.caddy import LoopbackHTTPS, stack_behind_caddy  # noqa: E402

PASSWORD = "bench-Secret-123"
PAGE = ("<!doctype html><title>bench</title>" + "x" * 1000).encode()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile, like bench.py's."""
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999))) - 1]


def summary_ms(samples_s: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples_s]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 3),
            "p95_ms": round(percentile(ms, 95), 3), "mean_ms": round(statistics.fmean(ms), 3)}


def say(text: str) -> None:
    print(f"[bench-proxy {time.strftime('%H:%M:%S')}] {text}", flush=True)


class ProxyBench:
    def __init__(self, *, small: bool) -> None:
        self.small = small
        self.claims = 3 if small else 30
        self.aliases = 1 if small else 10
        self.requests = 200 if small else 3000
        self.exit = ExitStack()
        self.base = ""
        self.session = requests.Session()

    # -- helpers ---------------------------------------------------------------------
    def https(self, hostname: str, path: str = "/") -> int:
        conn = LoopbackHTTPS(hostname, self.caddy.https_port, context=self.caddy.context(),
                             timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except OSError:
            return 0
        finally:
            conn.close()

    def first_200(self, hostname: str, started: float, timeout: float = 30) -> float:
        while time.perf_counter() - started < timeout:
            if self.https(hostname) == 200:
                return time.perf_counter() - started
            time.sleep(0.005)
        raise RuntimeError(f"https://{hostname}/ did not answer 200 within {timeout}s")

    def setup(self) -> None:
        self.stack, self.caddy = self.exit.enter_context(stack_behind_caddy(
            instance=f"bench-proxy-{os.getpid()}", port_base=30000 + random.randint(0, 40) * 200,
            sizes=f"nginx={self.claims + 2},apache=0,python=0,node=0",
            extra_env={"PAAS_USER_QUOTA": "1000", "PAAS_AUTH_THROTTLE": "100000/min",
                       "PAAS_LOG_LEVEL": "WARNING"}))
        # One user claims them all: no per-user share of the pool (the default is half).
        self.stack.manage("shell", "-c", "from pools.models import Runtime; "
                          "Runtime.objects.filter(name='nginx').update(max_share=1)")
        self.base = f"https://localhost:{self.caddy.https_port}"
        self.session.verify = str(self.caddy.root_cert)
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        user = {"username": "bench", "email": "bench@example.com", "password": PASSWORD}
        self.session.post(f"{self.base}/api/auth/register/", json=user, timeout=30)
        resp = self.session.post(f"{self.base}/api/auth/token/", timeout=30, json={
            "username": "bench", "password": PASSWORD})
        if resp.status_code != 200:
            raise RuntimeError(f"token: {resp.status_code} {resp.text[:500]}")
        token = resp.json()["access"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def stop(self) -> None:
        self.exit.close()

    # -- sections --------------------------------------------------------------------
    def claim_to_https(self) -> dict[str, Any]:
        samples, api = [], []
        self.deployments: list[dict[str, Any]] = []
        for _ in range(self.claims):
            started = time.perf_counter()
            resp = self.session.post(f"{self.base}/api/deployments/",
                                     json={"runtime": "nginx"}, timeout=30)
            api.append(time.perf_counter() - started)
            body = resp.json()
            if resp.status_code != 201:
                raise RuntimeError(f"claim answered {resp.status_code}: {body}")
            samples.append(self.first_200(body["hostname"], started))
            self.deployments.append(body)
        return {"claim_api": summary_ms(api), "claim_to_first_https_200": summary_ms(samples)}

    def alias_to_live(self) -> dict[str, Any]:
        samples = []
        for i, body in enumerate(self.deployments[: self.aliases]):
            alias = f"bench-{os.getpid()}-{i}"
            started = time.perf_counter()
            resp = self.session.patch(f"{self.base}/api/deployments/{body['id']}/",
                                      json={"alias": alias}, timeout=30)
            if resp.status_code != 200:
                raise RuntimeError(f"alias answered {resp.status_code}: {resp.text[:300]}")
            samples.append(self.first_200(f"{alias}.apps.localhost", started))
        return {"alias_to_live": summary_ms(samples)}

    def proxy_overhead(self) -> dict[str, Any]:
        body = self.deployments[0]
        upload = self.session.post(f"{self.base}/api/deployments/{body['id']}/files/",
                                   files={"file": ("page.html", PAGE)}, timeout=30)
        assert upload.status_code == 201, upload.text
        caddy = LoopbackHTTPS(body["hostname"], self.caddy.https_port,
                              context=self.caddy.context(), timeout=5)
        direct = http.client.HTTPConnection("127.0.0.1", body["port"], timeout=5)
        times: dict[str, list[float]] = {"caddy": [], "direct": []}
        for _ in range(self.requests):  # interleaved: both see the same machine load
            for name, conn in (("caddy", caddy), ("direct", direct)):
                started = time.perf_counter()
                conn.request("GET", "/page.html")
                resp = conn.getresponse()
                data = resp.read()
                times[name].append(time.perf_counter() - started)
                assert resp.status == 200 and data == PAGE, (name, resp.status)
        caddy.close()
        direct.close()
        result: dict[str, Any] = {
            name: {**summary_ms(t), "requests_per_s": round(len(t) / sum(t), 1)}
            for name, t in times.items()}
        result["added_p50_ms"] = round(percentile([t * 1000 for t in times["caddy"]], 50)
                                       - percentile([t * 1000 for t in times["direct"]], 50), 3)
        result["added_p95_ms"] = round(percentile([t * 1000 for t in times["caddy"]], 95)
                                       - percentile([t * 1000 for t in times["direct"]], 95), 3)
        return result


def markdown(report: dict[str, Any]) -> str:
    s = report["sections"]
    rows = [
        ("claim: API answer", s["claim_to_https"]["claim_api"], ""),
        ("claim → first HTTPS 200 from the new hostname",
         s["claim_to_https"]["claim_to_first_https_200"], ""),
        ("alias → live (background task + one Caddy load)", s["alias_to_live"]["alias_to_live"],
         ""),
        ("static file through Caddy (HTTPS, kept-alive)", s["proxy_overhead"]["caddy"],
         f"{s['proxy_overhead']['caddy']['requests_per_s']} req/s"),
        ("static file on the direct port (HTTP, kept-alive)", s["proxy_overhead"]["direct"],
         f"{s['proxy_overhead']['direct']['requests_per_s']} req/s"),
    ]
    lines = ["| measure | n | p50 ms | p95 ms | note |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['n']} | {r['p50_ms']} | {r['p95_ms']} | {note} |"
              for name, r, note in rows]
    lines.append(f"\nCaddy adds {s['proxy_overhead']['added_p50_ms']} ms at p50 "
                 f"({s['proxy_overhead']['added_p95_ms']} ms at p95); target ≤ 1 ms at p50.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--out-dir", default=str(ROOT / "bench-results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas_project.settings")
    bench = ProxyBench(small=args.small)
    report: dict[str, Any] = {"started": dt.datetime.now(dt.timezone.utc).isoformat(),
                              "small": args.small, "sections": {}}
    try:
        say("starting a live stack behind its own Caddy")
        bench.setup()
        for name in ("claim_to_https", "alias_to_live", "proxy_overhead"):
            say(name)
            report["sections"][name] = getattr(bench, name)()
    finally:
        bench.stop()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"proxy-{stamp}.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (out / "proxy-latest.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Turn the newest curves and arrival results into docs/BENCHMARKS.md and a chart.

``.venv/bin/python infrastructure/bench/report.py [--results bench-results]`` reads the
newest ``curves-*.json`` and ``arrival-*.json``, writes the chart (a hand-written SVG:
three small line plots, no plotting library) and replaces the generated section of
docs/BENCHMARKS.md (between the two markers; appended at the end the first time). The
rest of that file is written by people and left alone.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- curves:begin (written by infrastructure/bench/report.py) -->"
END = "<!-- curves:end -->"
CHART_NAME = "benchmarks-curves.svg"


def newest(results: Path, prefix: str) -> dict[str, Any] | None:
    files = sorted(results.glob(f"{prefix}-*.json"))
    return json.loads(files[-1].read_text()) if files else None


def about(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    return (f"{meta['date']}, commit {meta.get('git') or '?'}: {m['nproc']} CPU ({m['cpu']}), "
            f"{m['memory_gb']} GB RAM, Docker {m['docker']}; host load average (1/5/15 min) "
            f"{' '.join(meta['loadavg_before'])} before, {' '.join(meta['loadavg_after'])} "
            f"after; {meta['total_s']} s in all")


def table(header: Sequence[str], rows: list[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join("n/a" if v is None else str(v) for v in row) + " |"
              for row in rows]
    return lines


def curves_markdown(report: dict[str, Any]) -> list[str]:
    c = report["curves"]
    lines = [f"Scaling curves (`infrastructure/bench/curves.py`), {about(report['meta'])}. "
             f"{report['meta']['database']}, {report['meta']['web']}, fixed pools.", ""]
    if report["meta"].get("error"):
        lines += [f"**The run failed:** {report['meta']['error'][:300]}", ""]
    lines += ["Claims (one user per client, keep-alive, each level on at least "
              f"{report['meta']['sizes']['idle_floor']} idle slots):", ""]
    lines += table(["clients", "claims", "claims/s", "p50 ms", "p99 ms", "mean ms",
                    "p99 / mean", "errors"],
                   [[r["clients"], r["claims"], r["claims_per_s"], r.get("p50_ms"),
                     r.get("p99_ms"), r.get("mean_ms"), r["p99_over_mean"], r["errors"]]
                    for r in c["claims"]])
    lines += ["", "Pool init (`manage.py pool add nginx N` on the running stack, the "
              "command's start included):", ""]
    lines += table(["containers", "pool before", "wall s", "containers/s"],
                   [[r["containers"], r["pool_before"], r["wall_s"], r["containers_per_s"]]
                    for r in c["init"]])
    lines += ["", "Platform memory (PSS of web + cluster + watcher, all slots idle):", ""]
    # The watcher is the cluster's child (`pool cluster`); runs from before that
    # measured it as a group of its own ("watch").
    lines += table(["slots", "PSS MB", "web", "cluster + watcher"],
                   [[r["slots"], r["platform_pss_mb"], r["groups_pss_mb"].get("web"),
                     round(r["groups_pss_mb"].get("worker", 0.0)
                           + r["groups_pss_mb"].get("watch", 0.0), 1)]
                    for r in c["memory"]])
    return lines


def arrival_markdown(report: dict[str, Any]) -> list[str]:
    a, meta = report["arrival"], report["meta"]
    s = meta["sizes"]
    lines = [f"Arrival wave (`infrastructure/bench/arrival.py`), {about(meta)}. "
             f"{s['users']} users, each launching once, starts spread evenly over "
             f"{s['spread_s']:g} s, on nginx min_idle {s['min_idle']}; settings "
             + ", ".join(f"{k}={v}" for k, v in meta["settings"].items())
             + f", idle_ttl {s['idle_ttl_s']} s. Time from a user's first request to its "
             "URL answering HTTP (retries after 503 + Retry-After and pending launches "
             "included).", ""]
    if meta.get("error"):
        lines += [f"**The run failed:** {meta['error'][:300]}", ""]
    if not a:
        return lines
    shrink = a.get("shrink", {})
    shrink_text = (f"{shrink['seconds']} s" if shrink.get("seconds") is not None
                   else "not within the watch" if shrink.get("measured") else "not measured")
    first = a["first_answer"]
    rows: list[Sequence[Any]] = [
        ["served / users", f"{a['served']} / {a['users']}", "all"],
        ["served within 30 s", a["within_30s"], f"{a['users']}"],
        ["p50 / p95 / max to a serving URL, ms",
         f"{a.get('p50_ms')} / {a.get('p95_ms')} / {a.get('max_ms')}", "max ≤ 30000"],
        ["first answer 201 / 202 pending / 503", f"{first['201']} / {first['202']} / "
         f"{first['503']}", ""],
        ["retries after 503 + Retry-After", a["retries_after_503"], ""],
        ["pending launches that turned running", a["pending_turned_running"], ""],
        ["pending launches given up after PAAS_CLAIM_WAIT", a.get("pending_given_up"), "0"],
        ["5xx other than 503", a["bad_5xx"], "0"],
        ["peak containers", a["peak_containers"], ""],
        [f"users released → back to {s['min_idle']} containers", shrink_text, ""],
    ]
    lines += table(["measure", "value", "target"], rows)
    if a.get("errors"):
        lines += ["", "Users not served: " + "; ".join(a["errors"])]
    return lines


# --- the chart ----------------------------------------------------------------------------
W, H, PAD = 300, 240, 46
TOP = 66  # the highest point of a line; the legend sits above it


def panel(x0: int, title: str, xs: list[float], series: list[tuple[str, list[float], str]],
          xlabel: str, ylabel: str) -> list[str]:
    """One line plot at horizontal offset ``x0``: each series scaled to its own maximum
    (its unit is in its legend), x on a log scale when it spans a factor of 8 or more."""
    log_x = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 8

    def fx(x: float) -> float:
        lo, hi = (math.log(min(xs)), math.log(max(xs))) if log_x else (0.0, max(xs))
        v = math.log(x) if log_x else x
        return x0 + PAD + (v - lo) / ((hi - lo) or 1) * (W - PAD - 36)

    out = [f'<text x="{x0 + W / 2}" y="18" text-anchor="middle" font-weight="bold">'
           f'{escape(title)}</text>',
           f'<line x1="{x0 + PAD}" y1="{H - PAD}" x2="{x0 + W - 10}" y2="{H - PAD}" '
           'stroke="#333"/>',
           f'<line x1="{x0 + PAD}" y1="30" x2="{x0 + PAD}" y2="{H - PAD}" stroke="#333"/>',
           f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle">{escape(xlabel)}</text>',
           f'<text x="{x0 + 12}" y="{(H - PAD + 30) / 2}" text-anchor="middle" '
           f'transform="rotate(-90 {x0 + 12} {(H - PAD + 30) / 2})">{escape(ylabel)}</text>']
    for x in xs:
        out.append(f'<text x="{fx(x):.1f}" y="{H - PAD + 14}" text-anchor="middle">{x:g}</text>')
    for n, (name, ys, color) in enumerate(series):
        top = max([y for y in ys if y is not None] or [1]) or 1

        def fy(y: float, top: float = top) -> float:
            return H - PAD - y / top * (H - PAD - TOP)

        points = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in zip(xs, ys, strict=True)
                          if y is not None)
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                   'stroke-width="2"/>')
        for x, y in zip(xs, ys, strict=True):
            if y is not None:
                out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{color}"/>'
                           f'<text x="{fx(x) + 4:.1f}" y="{fy(y) - 5:.1f}" fill="{color}">'
                           f'{y:g}</text>')
        out.append(f'<text x="{x0 + PAD + 6}" y="{38 + 13 * n}" fill="{color}">'
                   f'{escape(name)} (max {top:g})</text>')
    return out


def has_chart(report: dict[str, Any] | None) -> bool:
    return report is not None and all(report["curves"][k] for k in ("claims", "init", "memory"))


def chart_svg(report: dict[str, Any]) -> str:
    c = report["curves"]
    claims, init, memory = c["claims"], c["init"], c["memory"]
    body = panel(0, "Claims vs clients", [r["clients"] for r in claims],
                 [("claims/s", [r["claims_per_s"] for r in claims], "#1f77b4"),
                  ("p99 ms", [r.get("p99_ms") for r in claims], "#d62728")],
                 "concurrent clients", "scaled to max")
    body += panel(W, "Pool init", [r["containers"] for r in init],
                  [("wall s", [r["wall_s"] for r in init], "#2ca02c"),
                   ("containers/s", [r["containers_per_s"] for r in init], "#9467bd")],
                  "containers added", "scaled to max")
    body += panel(2 * W, "Platform memory", [r["slots"] for r in memory],
                  [("PSS MB", [r["platform_pss_mb"] for r in memory], "#ff7f0e")],
                  "slots", "MB")
    meta = report["meta"]
    note = (f"{meta['date']} commit {meta.get('git') or '?'}, load average "
            f"{' '.join(meta['loadavg_before'])}")
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{3 * W}" height="{H + 18}" '
        f'viewBox="0 0 {3 * W} {H + 18}" font-family="sans-serif" font-size="11">',
        f'<rect width="{3 * W}" height="{H + 18}" fill="white"/>', *body,
        f'<text x="{3 * W - 6}" y="{H + 12}" text-anchor="end" fill="#666">'
        f'{escape(note)}</text>', "</svg>", ""])


# --- writing -----------------------------------------------------------------------------
def section(curves: dict[str, Any] | None, arrival: dict[str, Any] | None) -> str:
    lines = [BEGIN, "## Scaling curves and the arrival wave", "",
             "Generated by `infrastructure/bench/report.py` from the newest "
             "`bench-results/curves-*.json` and `arrival-*.json`; `make bench` runs "
             "`arrival.py`, `curves.py` and `report.py` after `bench.py` (each starts a "
             "live stack of its own; `BENCH_ARGS=--small` runs them at tiny sizes and "
             "leaves this file alone). The curves walk one nginx pool up from 10 to 400 "
             "slots (memory at 10, 100, 400; `pool add` timed for 10, 40, 160 on the way), "
             "then claim at 1, 8, 32 and 64 clients, each level on at least 200 idle "
             "slots. The wave sends 100 users, each launching once, at a pool of 5 with "
             "elastic pools and claim wait on, then releases them all and times the shrink "
             "(the trim runs in the reconcile pass, so `PAAS_MONITOR_INTERVAL` bounds it "
             "besides `idle_ttl`). Figures from a loaded host are comparisons, not "
             "results: read the load average.", ""]
    if curves:
        chart = [f"![scaling curves]({CHART_NAME})", ""] if has_chart(curves) else []
        lines += [*chart, *curves_markdown(curves), ""]
    if arrival:
        lines += [*arrival_markdown(arrival), ""]
    return "\n".join([*lines, END]) + "\n"


def write_doc(doc: Path, text: str) -> None:
    old = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    doc.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    # --out-dir: where the other scripts of `make bench` wrote (the same BENCH_ARGS).
    parser.add_argument("--results", "--out-dir", dest="results",
                        default=str(ROOT / "bench-results"))
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    parser.add_argument("--small", action="store_true",
                        help="a smoke run's figures: write into the results dir, not docs/")
    # `make bench` passes the same BENCH_ARGS to every script; ignore bench.py's others.
    args, _ = parser.parse_known_args(argv)
    results = Path(args.results)
    docs = results if args.small else Path(args.docs)
    if args.small and not (docs / "BENCHMARKS.md").exists():
        (docs / "BENCHMARKS.md").write_text("# Benchmarks (a small run)\n")
    curves, arrival = newest(results, "curves"), newest(results, "arrival")
    if curves is None and arrival is None:
        print(f"no curves-*.json or arrival-*.json in {results}", file=sys.stderr)
        return 1
    if curves and has_chart(curves):
        (docs / CHART_NAME).write_text(chart_svg(curves))
    write_doc(docs / "BENCHMARKS.md", section(curves, arrival))
    print(f"wrote {docs / 'BENCHMARKS.md'}"
          + (f" and {docs / CHART_NAME}" if has_chart(curves) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

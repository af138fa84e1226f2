"""The benchmark at tiny sizes, so it cannot rot: every section runs on the real stacks
(SQLite; behind a Caddy of its own; on a throwaway PostgreSQL), locust included, and
reports numbers. No timing is asserted (that is the benchmark's own table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NUMERIC = (int, float)


def test_bench_small_reports_every_section(tmp_path: Path) -> None:
    # The bench makes its own instance, data dir and ports: give it none of this run's.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PAAS_") and k != "DJANGO_SETTINGS_MODULE"}
    out_dir = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infrastructure/bench/bench.py"), "--small",
         "--out-dir", str(out_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    [json_file] = out_dir.glob("bench-*.json")
    report = json.loads(json_file.read_text())
    sections = report["sections"]
    assert report["meta"]["containers_left"] == 0
    for name in ["claim_sequential", "burst", "recycle", "locust", "cold_start",
                 "release_to_idle", "kill_recovery", "upload", "memory",
                 "release_to_idle_https", "pool_init", "burst_postgres"]:
        assert "error" not in sections[name], (name, sections[name])

    assert isinstance(sections["claim_sequential"]["p50_ms"], NUMERIC)
    assert isinstance(sections["claim_sequential"]["p99_ms"], NUMERIC)
    assert isinstance(sections["claim_sequential"]["auth_get"]["p50_ms"], NUMERIC)
    assert isinstance(sections["claim_sequential"]["ratio_vs_auth_get_p50"], NUMERIC)
    assert isinstance(sections["burst"]["throughput_per_s"], NUMERIC)
    assert isinstance(sections["burst"]["p99_over_mean"], NUMERIC)
    assert sections["burst"]["errors"] == 0
    # Every burst slot came back; locust claimed and released as many as it was told to.
    assert sections["recycle"]["released"] == sections["burst"]["claims"]
    locust = sections["locust"]
    assert locust["claims"] == locust["releases"] == locust["users"] * locust["cycles_per_user"]
    assert locust["failures"] == 0 and locust["exit_code"] == 0, locust
    assert locust["claims_per_s"] > 0 and isinstance(locust["ratio_vs_burst"], NUMERIC)
    assert isinstance(sections["release_to_idle_https"]["p50_ms"], NUMERIC)
    assert sections["pool_init"]["routed_when_command_ended"] == sections["pool_init"][
        "containers"]
    pg = sections["burst_postgres"]
    assert pg["errors"] == 0 and pg["throughput_per_s"] > 0, pg
    assert isinstance(sections["cold_start"]["ratio_vs_claim_p50"], NUMERIC)
    assert isinstance(sections["release_to_idle"]["p50_ms"], NUMERIC)
    assert isinstance(sections["kill_recovery"]["watcher"]["p50_ms"], NUMERIC)
    assert isinstance(sections["kill_recovery"]["reconcile"]["p50_ms"], NUMERIC)
    assert isinstance(sections["pool_init"]["containers_per_s"], NUMERIC)
    assert isinstance(sections["upload"]["nginx"]["p50_ms"], NUMERIC)
    assert isinstance(sections["upload"]["python"]["p50_ms"], NUMERIC)
    assert isinstance(sections["memory"]["platform_pss_mb"], NUMERIC)
    assert sections["memory"]["platform_pss_mb"] > 0
    assert set(sections["memory"]["container_mb"]) == {"nginx", "apache", "python", "node"}
    # Every target row is in the table, with a value; the derived limit is computed.
    assert all(row["value"] is not None for row in report["targets"]), report["targets"]
    [kill] = [row for row in report["targets"] if row["key"] == "kill_recovery.watcher.p50_ms"]
    assert kill["limit"] == round(sections["cold_start"]["median_ms"] + 250, 1)
    table = (out_dir / "latest.md").read_text()
    assert "| measure | value | target | result |" in table
    assert "Cross-check: locust" in table and "load average" in table


def test_proxy_bench_small_reports_every_figure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PAAS_") and k != "DJANGO_SETTINGS_MODULE"}
    out_dir = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infrastructure/bench/bench_proxy.py"), "--small",
         "--out-dir", str(out_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [json_file] = out_dir.glob("proxy-*.json")
    sections = json.loads(json_file.read_text())["sections"]
    assert isinstance(sections["claim_to_https"]["claim_to_first_https_200"]["p50_ms"], NUMERIC)
    assert isinstance(sections["alias_to_live"]["alias_to_live"]["p95_ms"], NUMERIC)
    assert isinstance(sections["proxy_overhead"]["added_p50_ms"], NUMERIC)
    assert sections["proxy_overhead"]["caddy"]["requests_per_s"] > 0
    assert "Caddy adds" in (out_dir / "proxy-latest.md").read_text()

"""The arrival wave, the scaling curves and their report at tiny sizes, so they cannot
rot: each runs on a real stack and reports numbers. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "infrastructure/bench"
NUMERIC = (int, float)


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    # Each script makes its own instance, data dir and ports: give it none of this run's.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PAAS_") and k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def only(out_dir: Path, prefix: str) -> dict[str, Any]:
    [path] = out_dir.glob(f"{prefix}-*.json")
    return dict(json.loads(path.read_text()))


def test_arrival_wave_small_serves_every_user(tmp_path: Path) -> None:
    run_script("arrival.py", "--small", "--out-dir", str(tmp_path))
    report = only(tmp_path, "arrival")
    wave = report["arrival"]
    assert report["meta"]["containers_left"] == 0
    assert wave["served"] == wave["users"], wave["errors"]
    assert wave["bad_5xx"] == 0
    # More users than min_idle: the pool grew, and some launches waited (202) or retried.
    assert wave["users"] > report["meta"]["sizes"]["min_idle"]
    assert wave["peak_containers"] >= wave["served"]
    assert wave["first_answer"]["202"] + wave["first_answer"]["503"] > 0
    assert isinstance(wave["p95_ms"], NUMERIC)


def test_curves_small_report_every_point(tmp_path: Path) -> None:
    run_script("curves.py", "--small", "--out-dir", str(tmp_path))
    report = only(tmp_path, "curves")
    curves = report["curves"]
    assert report["meta"]["containers_left"] == 0
    assert [r["clients"] for r in curves["claims"]] == list(report["meta"]["sizes"]["clients"])
    assert all(r["errors"] == 0 and r["claims_per_s"] > 0 for r in curves["claims"])
    assert all(r["idle_before"] >= report["meta"]["sizes"]["idle_floor"]
               for r in curves["claims"])
    assert [r["containers"] for r in curves["init"]] == report["meta"]["sizes"]["init_counts"]
    assert [r["slots"] for r in curves["memory"]] == report["meta"]["sizes"]["memory_slots"]
    assert all(r["platform_pss_mb"] > 0 for r in curves["memory"])

    run_script("report.py", "--small", "--results", str(tmp_path))
    doc = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| clients | claims | claims/s |" in doc
    svg = ET.parse(tmp_path / "benchmarks-curves.svg").getroot()
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 5

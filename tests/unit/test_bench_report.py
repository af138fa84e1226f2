"""report.py: the generated section of docs/BENCHMARKS.md and the chart."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_report", ROOT / "infrastructure/bench/report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = load_report()
META = {"date": "2026-11-30T12:00:00+00:00", "git": "abc1234", "total_s": 99.0,
        "loadavg_before": ["0.10", "0.20", "0.30"], "loadavg_after": ["1.0", "1.1", "1.2"],
        "machine": {"nproc": 2, "cpu": "cpu", "memory_gb": 24.0, "docker": "20.10"}}


def curves() -> dict[str, Any]:
    return {"meta": {**META, "database": "SQLite", "web": "gunicorn",
                     "sizes": {"idle_floor": 200}},
            "curves": {
                "claims": [{"clients": c, "claims": 200, "claims_per_s": 50.0 * c ** 0.5,
                            "p50_ms": 5.0 * c, "p99_ms": 9.0 * c, "mean_ms": 6.0 * c,
                            "p99_over_mean": 1.5, "errors": 0} for c in (1, 8, 32, 64)],
                "init": [{"containers": n, "pool_before": 10, "wall_s": n / 4,
                          "containers_per_s": 4.0} for n in (10, 40, 160)],
                "memory": [{"slots": n, "platform_pss_mb": 300.0 + n / 10,
                            "groups_pss_mb": {"web": 1.0, "worker": 2.0, "watch": 3.0}}
                           for n in (10, 100, 400)]}}


def arrival() -> dict[str, Any]:
    return {"meta": {**META, "settings": {"PAAS_CLAIM_WAIT": "60"},
                     "sizes": {"users": 100, "spread_s": 10.0, "min_idle": 5,
                               "idle_ttl_s": 10}},
            "arrival": {"users": 100, "served": 100, "within_30s": 100, "p50_ms": 1.0,
                        "p95_ms": 2.0, "max_ms": 3.0, "retries_after_503": 4,
                        "first_answer": {"201": 5, "202": 90, "503": 5},
                        "pending_turned_running": 90, "bad_5xx": 0, "peak_containers": 105,
                        "errors": [], "shrink": {"measured": True, "seconds": 71.5}}}


def test_the_section_is_appended_once_then_replaced_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nWritten by people.\n")
    report.write_doc(doc, report.section(curves(), arrival()))
    first = doc.read_text()
    assert first.startswith("# Benchmarks\n\nWritten by people.\n")
    assert "| 64 | 200 | 400.0 |" in first
    assert "| users released → back to 5 containers | 71.5 s |  |" in first

    doc.write_text(first + "\n## Added later by people\n")
    newer = curves()
    newer["curves"]["claims"][0]["claims_per_s"] = 77.0
    report.write_doc(doc, report.section(newer, None))
    second = doc.read_text()
    assert second.count(report.BEGIN) == 1 and second.count(report.END) == 1
    assert "| 1 | 200 | 77.0 |" in second and "| 1 | 200 | 50.0 |" not in second
    assert "Arrival wave" not in second
    assert second.startswith("# Benchmarks\n\nWritten by people.\n")
    assert second.endswith("## Added later by people\n")


def test_the_chart_is_svg_with_a_line_and_a_point_per_figure() -> None:
    svg = ET.fromstring(report.chart_svg(curves()))
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.tag == f"{ns}svg"
    assert len(svg.findall(f"{ns}polyline")) == 5  # claims/s, p99, wall, per s, PSS
    assert len(svg.findall(f"{ns}circle")) == 4 + 4 + 3 + 3 + 3
    assert "load average 0.10 0.20 0.30" in report.chart_svg(curves())


def test_a_failed_run_says_so_and_has_no_chart(tmp_path: Path) -> None:
    failed = curves()
    failed["meta"]["error"] = "RuntimeError: boom"
    failed["curves"]["memory"] = []
    text = report.section(failed, None)
    assert "**The run failed:** RuntimeError: boom" in text
    assert "![scaling curves]" not in text

"""The benchmark's judging and reading, without a stack: issue 15's target table, the
limit derived from the same run, and the figures read from locust's CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infrastructure" / "bench"))

import bench  # noqa: E402

HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
          "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
          "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%")


def row(report: list[dict[str, Any]], key: str) -> dict[str, Any]:
    [found] = [r for r in report if r["key"] == key]
    return found


def test_the_targets_are_issue_15s() -> None:
    limits = {t.key: (t.op, t.limit, t.limit_key) for t in bench.TARGETS if t.op}
    assert limits == {
        "claim_sequential.p50_ms": ("<=", 5, ""),
        "claim_sequential.p99_ms": ("<=", 15, ""),
        "claim_sequential.ratio_vs_auth_get_p50": ("<=", 2, ""),
        "burst.idle_before": (">=", 200, ""),
        "burst.throughput_per_s": (">=", 200, ""),
        "burst.p99_over_mean": ("<=", 2.5, ""),
        "burst.errors": ("==", 0, ""),
        "burst_postgres.idle_before": (">=", 200, ""),
        "burst_postgres.throughput_per_s": (">=", 250, ""),
        "burst_postgres.p99_over_mean": ("<=", 2.5, ""),
        "burst_postgres.errors": ("==", 0, ""),
        "locust.failures": ("==", 0, ""),
        "cold_start.ratio_vs_claim_p50": (">=", 40, ""),
        "release_to_idle.p50_ms": ("<=", 600, ""),
        "release_to_idle_https.p50_ms": ("<=", 1200, ""),
        "kill_recovery.watcher.p50_ms": ("<=", 250, "cold_start.median_ms"),
        "pool_init.wall_s": ("<=", 10, ""),
        "memory.platform_pss_mb": ("<=", 300, ""),
    }
    # Every section a target reads is one the benchmark runs.
    assert {t.key.split(".")[0] for t in bench.TARGETS} <= set(bench.SECTIONS)


def test_kill_recovery_is_judged_against_the_same_runs_cold_start() -> None:
    sections: dict[str, Any] = {"cold_start": {"median_ms": 300.0},
                                "kill_recovery": {"watcher": {"p50_ms": 550.0}}}
    kill = row(bench.evaluate(sections), "kill_recovery.watcher.p50_ms")
    assert (kill["limit"], kill["met"], kill["target"]) == (550.0, True, "<= 550 ms")

    sections["kill_recovery"]["watcher"]["p50_ms"] = 550.1
    assert row(bench.evaluate(sections), "kill_recovery.watcher.p50_ms")["met"] is False

    # No cold start measured: no limit, so neither met nor missed.
    del sections["cold_start"]
    kill = row(bench.evaluate(sections), "kill_recovery.watcher.p50_ms")
    assert kill["limit"] is None and kill["met"] is None
    assert "n/a" in kill["target"]


def test_a_missed_target_and_the_load_average_are_in_the_table() -> None:
    sections = {"claim_sequential": {"p50_ms": 5.01, "p99_ms": 15.0}}
    report = {"meta": {"date": "d", "mode": "small", "git": "abc", "web": "w",
                       "loadavg_before": ["0.10", "0.20", "0.30"],
                       "loadavg_after": ["1.00", "2.00", "3.00"],
                       "machine": {"nproc": 2, "cpu": "c", "memory_gb": 1, "docker": "x",
                                   "kernel": "k", "python": "p"}},
               "sections": sections, "targets": bench.evaluate(sections)}
    table = bench.markdown(report)
    assert "| 1. claim, sequential: p50 | 5.01 ms | <= 5 ms | **missed** |" in table
    assert "| 1. claim, sequential: p99 | 15.0 ms | <= 15 ms | met |" in table
    assert "0.10 0.20 0.30 before, 1.00 2.00 3.00 after" in table


def test_locust_figures_come_from_its_csv(tmp_path: Path) -> None:
    stats = tmp_path / "locust_stats.csv"
    stats.write_text("\n".join([
        HEADER,
        "DELETE,release,224,0,21,24.5,9.1,80.2,0.0,101.8,0.0,21,25,28,30,38,45,60,70,80,80,80",
        "POST,claim,224,1,95,110.3,20.7,410.9,420.0,101.8,0.45,95,120,140,150,200,260,"
        "330,380,410,410,410",
        ",Aggregated,448,1,40,67.4,9.1,410.9,210.0,203.6,0.45,40,95,110,120,150,200,"
        "260,330,410,410,410",
    ]) + "\n")
    assert bench.locust_figures(stats) == {
        "claims": 224, "releases": 224, "failures": 1, "claims_per_s": 101.8,
        "requests_per_s": 203.6, "claim_p50_ms": 95.0, "claim_p99_ms": 380.0,
        "claim_mean_ms": 110.3, "release_p50_ms": 21.0,
    }


def test_locust_figures_of_a_run_without_requests(tmp_path: Path) -> None:
    stats = tmp_path / "locust_stats.csv"
    stats.write_text(HEADER + "\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,"
                     "N/A,N/A,N/A,N/A,N/A,N/A\n")
    figures = bench.locust_figures(stats)
    assert figures["claims"] == 0 and figures["claim_p50_ms"] is None


def test_only_runs_the_stack_that_holds_the_section(monkeypatch: Any) -> None:
    ran: list[str] = []
    monkeypatch.setattr(bench, "machine_info", lambda: {})
    monkeypatch.setattr(bench, "run", lambda *a, **k: mock.Mock(stdout=""))
    monkeypatch.setattr(bench.Bench, "main_stack", lambda self, meta: ran.append("main"))
    monkeypatch.setattr(bench.Bench, "https_stack", lambda self: ran.append("https"))

    def postgres_stack(self: bench.Bench) -> None:
        ran.append("postgres")
        self.results["burst_postgres"] = {"throughput_per_s": 251.0}

    monkeypatch.setattr(bench.Bench, "postgres_stack", postgres_stack)
    b = bench.Bench(bench.SMALL, small=True, port_base=61000, runtimes=("nginx",))
    b.stack.data_dir.rmdir()  # made by the stack's constructor; never started here
    report = b.run(only="burst_postgres")
    assert ran == ["postgres"]
    assert list(report["sections"]) == ["burst_postgres"]
    assert {r["key"].split(".")[0] for r in report["targets"]} == {"burst_postgres"}
    assert row(report["targets"], "burst_postgres.throughput_per_s")["met"] is True

    ran.clear()
    assert set(b.run()["sections"]) == set(bench.SECTIONS)  # without it: every stack
    assert ran == ["main", "https", "postgres"]


def test_cpu_per_claim_is_split_by_who_used_it() -> None:
    """A process is the web's by its gunicorn command line and port, the database's by
    its name, the client's by being this process; one that ended between the snapshots
    counts nothing, one that started counts from zero."""
    web = "gunicorn /venv/bin/gunicorn app --bind 127.0.0.1:5123"
    before = ({10: (web, 100), 11: ("postgres postgres: paas", 50),
               bench.os.getpid(): ("python bench.py", 7), 12: ("dockerd dockerd", 1),
               13: ("gunicorn other --bind 127.0.0.1:9999", 0), 14: ("gone x", 5)},
              1_000, 2_000)
    after = ({10: (web, 160), 11: ("postgres postgres: paas", 70),
              bench.os.getpid(): ("python bench.py", 17), 12: ("dockerd dockerd", 6),
              13: ("gunicorn other --bind 127.0.0.1:9999", 4), 15: (web, 20)},
             1_150, 2_200)
    tick_ms = 1000 / bench.os.sysconf("SC_CLK_TCK")
    out = bench.cpu_per_claim(before, after, web_port=5123, claims=10)
    assert out["cpu_ms_per_claim"] == {"web": round(80 * tick_ms / 10, 2),
                                       "database": round(20 * tick_ms / 10, 2),
                                       "client": round(10 * tick_ms / 10, 2),
                                       "other": round(9 * tick_ms / 10, 2)}
    assert out["cores_busy_pct"] == 75.0

"""The Grafana dashboard in the repository (for operators' own Grafana): well-formed,
every query valid PromQL (promtool) over metrics that /metrics really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client
from pytest_django.fixtures import Settings

from pools import metrics
from tests.live import ROOT
from tests.scrape import samples
from tests.unit.test_prometheus_rules import promtool

DASHBOARD = ROOT / "infrastructure" / "grafana" / "paas-dashboard.json"
METRIC = re.compile(r"\b((?:paas|django_http)_[a-z_]+)\b")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert {v["name"] for v in board["templating"]["list"]} == {"instance"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and panel["type"] in ("stat", "timeseries")
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}" and panel["targets"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & mine, f"panel {panel['title']} overlaps another"
        cells |= mine
        assert all('instance=~"$instance"' in t["expr"] for t in panel["targets"])


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(queries())]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    promtool("check", "rules", "queries.yml", cwd=tmp_path)


@pytest.mark.django_db(transaction=True)
def test_queries_use_metrics_that_are_exported(settings: Settings) -> None:
    settings.PAAS_METRICS_TOKEN = "m" * 32
    # One series of each event metric, as the platform's first events would create.
    metrics.CLAIMS.labels(runtime="nginx", outcome="ok")
    metrics.CLAIM_SECONDS.labels(runtime="nginx")
    metrics.RECOVERIES.labels(trigger="watch", outcome="succeeded")
    metrics.RECOVERY_SECONDS.labels(trigger="watch")
    metrics.PASSES.labels(result="ok")
    metrics.PASS_SECONDS.observe(0)
    Client().get("/healthz")
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer " + "m" * 32).content.decode()
    exported = {name for name, _ in samples(text)}
    used = {name for expr in queries() for name in METRIC.findall(expr)}
    assert used - exported == set()

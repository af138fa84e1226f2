"""The alert rules and our scrape, checked by Prometheus' own promtool (Debian package
prometheus; `make test` installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from tests.live import ROOT

RULES_DIR = ROOT / "infrastructure" / "prometheus"


def promtool(*args: str, stdin: str | None = None, cwd: Path = RULES_DIR) -> str:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: infrastructure/scripts/ensure-promtool.sh")
    done = subprocess.run(["promtool", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_rules_are_valid() -> None:
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", "rules.yml")


def test_every_alert_has_a_unit_test() -> None:
    import yaml

    rules = yaml.safe_load((RULES_DIR / "rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES_DIR / "rules_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]
              if case["exp_alerts"]}
    assert alerts == tested


def test_alert_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", "rules_test.yml")


@pytest.mark.django_db(transaction=True)
def test_a_real_scrape_passes_promtool_check_metrics(settings: Settings, warm) -> None:
    settings.PAAS_METRICS_TOKEN = "t" * 32
    warm("nginx", 1)
    client = Client()
    client.get("/api/runtimes/")  # some HTTP series too
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "t" * 32).content.decode()
    assert "paas_slots{" in text and "django_http_responses_total_by_status" in text
    promtool("check", "metrics", stdin=text)

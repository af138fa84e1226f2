"""Django behind Caddy, as the production settings make it (each case imports the
settings afresh in a subprocess with the environment an operator would set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "paas_project.settings",
    "PAAS_DOMAIN": "paas.example.com",
    "PAAS_APPS_DOMAIN": "example-apps.net",
    "PAAS_CADDY_ADMIN": "127.0.0.1:2019",
    "PAAS_SECRET_KEY": "k" * 20 + "-Zq8#x!vT2mP9@wL4^rN7&bY1*cF6(hJ3)dS5%gA0",
    "PAAS_DEBUG": "false",
}


def run(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("PAAS_") and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60,
                          env={**base, **PRODUCTION, "PAAS_DATA_DIR": str(tmp_path), **env})


CHECK = "import django, sys; from django.core.management import call_command; " \
        "django.setup(); call_command('check', '--deploy', '--fail-level', 'WARNING')"


def test_check_deploy_reports_nothing_for_the_production_settings(tmp_path: Path) -> None:
    result = run(tmp_path, CHECK)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_the_front_door(tmp_path: Path) -> None:
    result = run(tmp_path, CHECK, PAAS_CADDY_ADMIN="")  # the seed's plain-HTTP way
    assert result.returncode != 0 and "W008" in result.stderr  # the test can fail


REQUESTS = """
import django, json
django.setup()
from django.test import Client
c = Client()
out = {}
def show(name, resp):
    out[name] = {"status": resp.status_code, "headers": dict(resp.headers),
                 "cookies": {k: dict(v) for k, v in resp.cookies.items()},
                 "location": resp.headers.get("Location", "")}
show("https", c.get("/login/", HTTP_HOST="paas.example.com", HTTP_X_FORWARDED_PROTO="https"))
show("http", c.get("/login/", HTTP_HOST="paas.example.com"))
show("ask", c.get("/caddy/ask", {"domain": "nope.example-apps.net"}, HTTP_HOST="127.0.0.1:5000"))
show("evil", c.get("/login/", HTTP_HOST="evil.example.org", HTTP_X_FORWARDED_PROTO="https"))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("front-door")
    migrate = "import django; django.setup(); from django.core.management import call_command; " \
              "call_command('migrate', verbosity=0)"
    assert run(tmp, migrate).returncode == 0
    result = run(tmp, REQUESTS)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_pages_over_https_carry_csp_permissions_policy_hsts_and_host_cookies(
        answers: dict) -> None:
    page = answers["https"]
    assert page["status"] == 200
    headers = {k.lower(): v for k, v in page["headers"].items()}
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "camera=()" in headers["permissions-policy"]
    assert headers["strict-transport-security"] == "max-age=31536000"  # no subdomains
    cookie = page["cookies"]["__Host-csrftoken"]
    assert cookie["secure"] and cookie["path"] == "/" and not cookie["domain"]


def test_plain_http_is_redirected_but_caddys_ask_is_not(answers: dict) -> None:
    assert answers["http"]["status"] == 301
    assert answers["http"]["location"] == "https://paas.example.com/login/"
    assert answers["ask"]["status"] == 404  # answered, not redirected


def test_hosts_other_than_the_configured_domains_are_refused(answers: dict) -> None:
    assert answers["evil"]["status"] == 400

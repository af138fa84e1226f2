"""One helper gives the real client address (PAAS_TRUSTED_PROXIES), and every
per-address limit uses it: a client rotating X-Forwarded-For gets no extra attempts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractUser
from django.test import RequestFactory
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from paas_project.client_ip import client_ip, trusted_proxies
from tests.unit.api_helpers import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("trusted", "remote", "forwarded", "expected"), [
    ("", "203.0.113.9", "", "203.0.113.9"),
    ("", "203.0.113.9", "1.2.3.4", "203.0.113.9"),              # no proxy trusted
    ("1", "127.0.0.1", "198.51.100.7", "198.51.100.7"),          # one proxy (Caddy)
    ("1", "127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # client-sent entry ignored
    ("2", "10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.1", "198.51.100.7"),
    ("2", "10.0.0.2", "198.51.100.7", "198.51.100.7"),           # fewer entries than proxies
    ("1", "127.0.0.1", "", "127.0.0.1"),                         # header missing
    ("127.0.0.1", "127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),
    ("127.0.0.1,10.0.0.0/8", "127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", "198.51.100.7"),
    ("127.0.0.1", "203.0.113.9", "198.51.100.7", "203.0.113.9"),  # peer is no proxy of ours
    ("127.0.0.1", "127.0.0.1", "junk, 127.0.0.1", "junk"),        # a non-address stops the walk
    ("::1", "::1", "2001:db8::5", "2001:db8::5"),
])
def test_client_ip(settings: Settings, trusted: str, remote: str, forwarded: str,
                   expected: str) -> None:
    settings.PAAS_TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_a_bad_setting_is_refused_naming_the_entry() -> None:
    with pytest.raises(ValueError, match="'proxy.example' is neither a count"):
        trusted_proxies("127.0.0.1, proxy.example")


def _token_attempt(forwarded: str, remote: str = "203.0.113.9") -> int:
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": PASSWORD},
                                format="json", REMOTE_ADDR=remote,
                                HTTP_X_FORWARDED_FOR=forwarded)
    return response.status_code


@pytest.fixture
def three_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/min"})


def test_rotating_x_forwarded_for_gives_no_extra_attempts(
        alice: AbstractUser, three_a_minute: None) -> None:
    statuses = [_token_attempt(f"198.51.100.{i}") for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_behind_one_proxy_each_real_client_has_its_own_count(
        settings: Settings, alice: AbstractUser, three_a_minute: None) -> None:
    settings.PAAS_TRUSTED_PROXIES = "1"
    # one client behind the proxy, forging the left part of the header each time
    statuses = [_token_attempt(f"6.6.6.{i}, 198.51.100.7", "127.0.0.1") for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert _token_attempt("198.51.100.8", "127.0.0.1") == 200  # another client


def test_lockout_follows_the_real_address_too(settings: Settings, alice: AbstractUser) -> None:
    settings.PAAS_TRUSTED_PROXIES = ""
    assert django_settings.AXES_CLIENT_IP_CALLABLE == "paas_project.client_ip.client_ip"
    for i in range(settings.AXES_FAILURE_LIMIT):
        response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "no"},
                                    format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    assert response.status_code == 429 and response.json()["code"] == "locked_out"
    assert _token_attempt("198.51.100.200", remote="127.0.0.1") == 429


@pytest.mark.parametrize(("caddy", "expected"), [("127.0.0.1:2019", "127.0.0.1,::1"), ("", "")])
def test_behind_our_caddy_loopback_peers_are_the_trusted_proxy(caddy: str, expected: str,
                                                               tmp_path: Path) -> None:
    env = {**os.environ, "PAAS_CADDY_ADMIN": caddy, "PAAS_DATA_DIR": str(tmp_path)}
    env.pop("PAAS_TRUSTED_PROXIES", None)
    out = subprocess.run([sys.executable, "-c", "import paas_project.settings as s; "
                          "print(s.PAAS_TRUSTED_PROXIES)"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == expected

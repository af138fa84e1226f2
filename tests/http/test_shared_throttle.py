"""Throttle counts are shared across worker processes: two web servers on one database
(or one Redis, PAAS_REDIS_URL) see the same attempts, so spreading requests over the
workers gives no extra tries. Each server here is its own gunicorn with one worker."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.conftest import LiveWeb
from tests.live import free_port


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway Redis on loopback (Debian's redis-server), removed afterwards."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="paas-redis-"))
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            assert proc.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def token_attempt(web: LiveWeb) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    try:
        conn.request("POST", "/api/auth/token/", body=json.dumps(
            {"username": "nobody", "password": "wrong"}),
            # A forged X-Forwarded-For, different per server: it must not matter either.
            headers={"Content-Type": "application/json",
                     "X-Forwarded-For": f"6.6.6.{web.port % 250}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}").get("code", "")
    finally:
        conn.close()


def two_servers(extra_env: dict[str, str]) -> tuple[LiveWeb, LiveWeb]:
    env = {"PAAS_AUTH_THROTTLE": "3/min", "PAAS_LOGIN_FAILURE_LIMIT": "100", **extra_env}
    first = LiveWeb(env, workers=1)
    second = LiveWeb(env, workers=1, data_dir=first.data_dir)
    return first, second


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_two_processes_share_the_throttle_count(backend: str, request: pytest.FixtureRequest,
                                                ) -> None:
    extra = {"PAAS_REDIS_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    first, second = two_servers(extra)
    try:
        first.start()
        second.start()
        attempts = [token_attempt(first), token_attempt(second), token_attempt(first)]
        assert [status for status, _ in attempts] == [401, 401, 401]
        # the fourth attempt, on either process, is over the shared count of three
        assert token_attempt(second) == (429, "throttled")
        assert token_attempt(first) == (429, "throttled")
    finally:
        second.stop()
        first.stop()

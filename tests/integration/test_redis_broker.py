"""django-q2 on Redis (``PAAS_REDIS_URL``): a live stack whose tasks go through a real,
throwaway redis-server (Debian's), started here on a free loopback port and stopped
afterwards. A release queues the recycle task; the cluster takes it from Redis."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings

from pools.engine import DockerEngine
from tests.live import LiveStack, LiveUser
from tests.redisserver import redis_cli, throwaway_redis

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with throwaway_redis() as url:
        yield url


def slot_statuses(stack: LiveStack) -> list[str]:
    db = sqlite3.connect(f"file:{stack.data_dir / 'paas.sqlite3'}?mode=ro", uri=True,
                         timeout=10)
    try:
        return [row[0] for row in db.execute("SELECT status FROM pools_poolcontainer")]
    finally:
        db.close()


def test_release_is_recycled_through_the_redis_broker(
        docker_engine: DockerEngine, redis_url: str) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with LiveStack(instance=settings.PAAS_INSTANCE + "-redis",
                   port_base=settings.LIVE_PORT_BASE, sizes="nginx=1,apache=0,python=0,node=0",
                   extra_env={"PAAS_REDIS_URL": redis_url}, watcher=False) as stack:
        rita = LiveUser(stack, "rita")
        deployment = rita.launch("nginx")
        rita.api("DELETE", f"{deployment['id']}/", 204)
        deadline = time.monotonic() + 60
        while slot_statuses(stack) != ["idle"]:
            assert time.monotonic() < deadline, (slot_statuses(stack), stack.log("worker")[-2000:])
            time.sleep(0.2)
    calls = redis_cli(port, "info", "commandstats")
    assert "cmdstat_rpush:calls=" in calls, calls  # the task was queued in Redis


@pytest.fixture
def stack_database() -> Iterator[dict[str, str]]:
    """On the PostgreSQL stage of make test, a fresh database on the run's throwaway
    server for the live stack; on the SQLite stage, none (the stack's own file)."""
    url = os.environ.get("PAAS_TEST_DATABASE_URL", "")
    if not url:
        yield {}
        return
    import psycopg

    name = f"paas_race_{os.getpid()}"
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield {"PAAS_DATABASE_URL": url.rsplit("/", 1)[0] + f"/{name}"}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.vendor
def test_twelve_users_racing_four_web_workers_for_two_slots_make_two_winners(
        docker_engine: DockerEngine, redis_url: str, stack_database: dict[str, str]) -> None:
    """The production topology on one control host: four gunicorn workers, two
    django-q2 clusters on Redis and the watcher (and PostgreSQL on that stage of make
    test): a claim is still exactly-once across processes."""
    with LiveStack(instance=settings.PAAS_INSTANCE + "-race",
                   port_base=settings.LIVE_PORT_BASE, sizes="nginx=2,apache=0,python=0,node=0",
                   extra_env={"PAAS_REDIS_URL": redis_url, **stack_database},
                   web_workers=4, cluster_processes=2) as stack:
        sessions = [LiveUser(stack, f"racer{i}").http for i in range(12)]
        barrier = threading.Barrier(len(sessions))

        def launch(http: requests.Session) -> tuple[int, str]:
            # A fresh connection each: the first racer's kept-alive one has been idle
            # while the others signed up (14 s on a loaded host), and one the server
            # closes at its keep-alive limit (15 s) just as the launch goes out is reset.
            http.close()
            barrier.wait()
            answer = http.post(f"{stack.url}/api/deployments/", json={"runtime": "nginx"},
                               timeout=60)
            return answer.status_code, str(answer.json().get("code", ""))

        with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
            results = list(pool.map(launch, sessions))
        assert sorted(results).count((201, "")) == 2, results
        assert sorted(results)[2:] == [(503, "pool_exhausted")] * 10, results
        assert pool_counts(stack)["nginx"]["assigned"] == 2


def pool_counts(stack: LiveStack) -> dict[str, dict]:
    """Per runtime, its counts as the stack's own database says (SQLite or PostgreSQL)."""
    out = stack.manage("pool", "status", "--json").stdout
    return {row["runtime"]: row for row in json.loads(out)}

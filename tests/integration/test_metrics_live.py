"""/metrics on the live stack (three gunicorn workers, the django-q2 cluster, the
watcher): after a scripted scenario — claims, an exhausted pool, a kill and its
recovery, a failed slot — every scrape, whichever worker answers it, reports the exact
counter deltas and gauge values; promtool accepts the output."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import requests
from django.conf import settings

from pools.engine import DockerEngine
from tests.live import LiveStack
from tests.scrape import Samples, delta, samples, value
from tests.unit.test_prometheus_rules import promtool

pytestmark = pytest.mark.integration
TOKEN = "live-metrics-token-" + "x" * 20
PASSWORD = "Metrics-are-2-exact!"


@pytest.fixture(scope="module")
def stack(docker_engine: DockerEngine) -> Iterator[LiveStack]:
    with LiveStack(instance=settings.PAAS_INSTANCE + "-metrics",
                   port_base=settings.LIVE_PORT_BASE, sizes="nginx=2,apache=0,python=0,node=0",
                   web_workers=3, extra_env={"PAAS_METRICS_TOKEN": TOKEN}) as live:
        yield live


def scrape_text(stack: LiveStack) -> str:
    answer = requests.get(f"{stack.url}/metrics", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"})
    assert answer.status_code == 200, answer.text
    return answer.text


def user(stack: LiveStack, name: str) -> requests.Session:
    http = requests.Session()
    assert http.post(f"{stack.url}/api/auth/register/", timeout=10, json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD}).ok
    token = http.post(f"{stack.url}/api/auth/token/", timeout=10,
                      json={"username": name, "password": PASSWORD}).json()["access"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def launch(stack: LiveStack, http: requests.Session) -> requests.Response:
    return http.post(f"{stack.url}/api/deployments/", json={"runtime": "nginx"}, timeout=10)


def recovered(stack: LiveStack, http: requests.Session, deployment_id: int) -> bool:
    shown = http.get(f"{stack.url}/api/deployments/{deployment_id}/", timeout=10).json()
    last = shown.get("last_recovery") or {}
    return shown["status"] == "running" and last.get("outcome") == "succeeded"


def test_scrapes_after_a_scenario_report_exact_deltas(stack: LiveStack) -> None:
    before = samples(scrape_text(stack))
    alice, bob, carol = (user(stack, name) for name in ("alice", "bob", "carol"))
    mine = launch(stack, alice)
    assert mine.status_code == 201 and launch(stack, bob).status_code == 201
    assert launch(stack, carol).status_code == 503  # both nginx slots are taken
    subprocess.run(["docker", "kill", _container_of(stack, mine.json()["port"])], check=True,
                   capture_output=True)
    deadline = time.monotonic() + 60
    while not recovered(stack, alice, mine.json()["id"]):
        assert time.monotonic() < deadline, stack.log("worker")[-3000:]
        time.sleep(0.3)
    stack.manage("shell", "-c", (
        "from pools.models import PoolContainer, Runtime; r = Runtime.objects.get(name='nginx');"
        "PoolContainer.objects.create(runtime=r, port=r.port_max, status='failed')"))

    texts = [scrape_text(stack) for _ in range(9)]  # new connections: every worker answers
    after = samples(texts[-1])
    counters = [_events(samples(text)) for text in texts]
    assert all(c == counters[0] for c in counters), "workers disagree"
    claims = "paas_claims_total"
    assert delta(before, after, claims, runtime="nginx", outcome="ok") == 2
    assert delta(before, after, claims, runtime="nginx", outcome="pool_exhausted") == 1
    assert delta(before, after, "paas_claim_seconds_count", runtime="nginx") == 3
    recoveries = sum(delta(before, after, "paas_recoveries_total", trigger=trigger,
                           outcome="succeeded") for trigger in ("watch", "reconcile"))
    assert recoveries == 1
    assert sum(delta(before, after, "paas_recovery_seconds_count", trigger=trigger)
               for trigger in ("watch", "reconcile")) == 1
    assert value(after, "paas_slots", runtime="nginx", status="assigned") == 2
    assert value(after, "paas_slots", runtime="nginx", status="idle") == 0
    assert value(after, "paas_slots", runtime="nginx", status="failed") == 1
    assert value(after, "paas_pool_size", runtime="nginx") == 2
    assert value(after, "paas_engine_up") == 1
    http = "django_http_responses_total_by_status_view_method_total"
    assert delta(before, after, http, view="api-deployments", method="POST", status="201") == 2
    assert delta(before, after, http, view="api-deployments", method="POST", status="503") == 1
    promtool("check", "metrics", stdin=texts[-1])


def _events(scraped: Samples) -> dict:
    """The event series (claims, recoveries), which every process contributes to."""
    return {key: val for key, val in scraped.items()
            if key[0].startswith(("paas_claims", "paas_recover"))}


def _container_of(stack: LiveStack, port: int) -> str:
    return subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=paas.instance={stack.instance}",
         "--filter", f"label=paas.port={port}"], capture_output=True, text=True,
        check=True).stdout.split()[0]

"""/metrics: who may read it, the database facts it reports and the events it counts
(claims by outcome, recoveries, passes, HTTP requests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from pools import metrics, monitor
from pools.models import MonitorPass, PoolContainer, Runtime, SlotStatus
from tests.fakes import FakeEngine
from tests.scrape import Samples, delta, samples, value

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
TOKEN = "a-long-metrics-token-for-the-tests"


@pytest.fixture(autouse=True)
def fresh_engine_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_engine_state", {"checked": 0.0, "up": 0.0})
    monkeypatch.setattr(monitor, "CONFIRM_DELAY", 0)


@pytest.fixture
def scrape(settings: Settings) -> Callable[[], Samples]:
    settings.PAAS_METRICS_TOKEN = TOKEN

    def read() -> Samples:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain")
        return samples(response.content.decode())

    return read


# --- access ---------------------------------------------------------------------------
def test_metrics_are_closed_to_anonymous_and_ordinary_users(
        alice: AbstractUser, api: Callable[..., APIClient], settings: Settings) -> None:
    settings.PAAS_METRICS_TOKEN = TOKEN
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    assert api(alice).get("/metrics").status_code == 403
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 403 and wrong.json()["code"] == "permission_denied"
    assert b"paas_slots" not in wrong.content


def test_metrics_open_to_staff_the_token_and_allowed_addresses(
        charlie: AbstractUser, operator: Client, api: Callable[..., APIClient],
        settings: Settings) -> None:
    settings.PAAS_METRICS_TOKEN = TOKEN
    assert api(charlie).get("/metrics").status_code == 200  # a staff JWT
    assert operator.get("/metrics").status_code == 200  # a staff admin session
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert Client().get("/metrics").status_code == 401  # the test client is 127.0.0.1
    settings.PAAS_METRICS_ALLOW = ["10.0.0.0/8", "127.0.0.1"]
    assert Client().get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.7").get("/metrics").status_code == 401


def test_no_token_configured_means_no_token_accepted(settings: Settings) -> None:
    settings.PAAS_METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer x").status_code == 403


# --- facts ----------------------------------------------------------------------------
def test_gauges_report_slots_pool_size_and_ports(
        warm: Callable, scrape: Callable[[], Samples]) -> None:
    slots = warm("nginx", 3)
    PoolContainer.objects.filter(pk=slots[0].pk).update(status=S.FAILED)
    Runtime.objects.filter(name="nginx").update(pool_size=4)
    nginx = Runtime.objects.get(name="nginx")
    scraped = scrape()
    assert value(scraped, "paas_slots", runtime="nginx", status="idle") == 2
    assert value(scraped, "paas_slots", runtime="nginx", status="failed") == 1
    assert value(scraped, "paas_slots", runtime="nginx", status="assigned") == 0
    assert ("paas_slots", frozenset({"runtime": "apache", "status": "idle"}.items())) in scraped
    assert value(scraped, "paas_pool_size", runtime="nginx") == 4
    assert value(scraped, "paas_ports_free", runtime="nginx") == (
        nginx.port_max - nginx.port_min + 1 - 3)
    assert value(scraped, "paas_runtime_enabled", runtime="nginx") == 1


def test_queue_depth_and_oldest_task_age_come_from_the_broker_table(
        settings: Settings, scrape: Callable[[], Samples]) -> None:
    key, now = settings.Q_CLUSTER["name"], timezone.now()
    OrmQ.objects.create(key=key, payload="x", lock=now - timedelta(seconds=90))
    OrmQ.objects.create(key=key, payload="x", lock=now - timedelta(seconds=5))
    OrmQ.objects.create(key=key, payload="x", lock=now + timedelta(seconds=100))  # taken
    OrmQ.objects.create(key="another-cluster", payload="x", lock=now)
    scraped = scrape()
    assert value(scraped, "paas_queue_depth") == 2
    assert value(scraped, "paas_queue_running") == 1
    assert 90 <= value(scraped, "paas_queue_oldest_age_seconds") < 120


def test_last_successful_pass_and_engine_reachability(
        fake_engine: FakeEngine, warm: Callable, scrape: Callable[[], Samples]) -> None:
    assert value(scrape(), "paas_reconcile_last_success_timestamp_seconds") == 0
    warm("nginx", 1)
    monitor.reconcile_pass()
    good = MonitorPass.objects.get(ok=True)
    fake_engine.available = False
    metrics._engine_state["checked"] = 0.0
    monitor.reconcile_pass()  # fails: Docker is down
    scraped = scrape()
    assert value(scraped, "paas_reconcile_last_success_timestamp_seconds") == pytest.approx(
        good.finished_at.timestamp())
    assert value(scraped, "paas_reconcile_last_timestamp_seconds") > good.finished_at.timestamp()
    assert value(scraped, "paas_engine_up") == 0
    fake_engine.available = True
    assert value(scrape(), "paas_engine_up") == 0  # cached: scrapes do not ping each time
    metrics._engine_state["checked"] = 0.0
    assert value(scrape(), "paas_engine_up") == 1


# --- events ---------------------------------------------------------------------------
def test_claims_are_counted_by_outcome(
        alice: AbstractUser, bob: AbstractUser, warm: Callable, settings: Settings,
        api: Callable[..., APIClient], scrape: Callable[[], Samples]) -> None:
    warm("nginx", 1)
    warm("python", 1)
    settings.PAAS_USER_QUOTA = 1
    before = scrape()
    launch = lambda user, runtime: api(user).post(  # noqa: E731
        "/api/deployments/", {"runtime": runtime}, format="json").status_code
    assert launch(alice, "nginx") == 201
    assert launch(bob, "nginx") == 503
    assert launch(alice, "python") == 429
    Runtime.objects.filter(name="python").update(enabled=False)
    assert launch(bob, "python") == 400
    assert launch(bob, "no-such-runtime") == 400
    after = scrape()
    claims = "paas_claims_total"
    assert delta(before, after, claims, runtime="nginx", outcome="ok") == 1
    assert delta(before, after, claims, runtime="nginx", outcome="pool_exhausted") == 1
    assert delta(before, after, claims, runtime="python", outcome="quota_exceeded") == 1
    assert delta(before, after, claims, runtime="python", outcome="disabled") == 1
    assert delta(before, after, claims, runtime="unknown", outcome="unknown_runtime") == 1
    assert not any(dict(labels).get("runtime") == "no-such-runtime" for _, labels in after)
    assert delta(before, after, "paas_claim_seconds_count", runtime="nginx") == 2
    assert delta(before, after, "paas_claim_seconds_bucket", runtime="nginx", le="1.0") == 2


def test_recovery_and_pass_are_counted_and_timed(
        fake_engine: FakeEngine, warm: Callable, scrape: Callable[[], Samples]) -> None:
    slot = warm("nginx", 1)[0]
    PoolContainer.objects.filter(pk=slot.pk).update(
        built_at=timezone.now() - timedelta(minutes=10))
    before = scrape()
    fake_engine.kill(slot.container_id)
    assert monitor.reconcile_pass()["recovered"] == [slot.pk]
    after = scrape()
    assert delta(before, after, "paas_recoveries_total", trigger="reconcile",
                 outcome="succeeded") == 1
    assert delta(before, after, "paas_recovery_seconds_count", trigger="reconcile") == 1
    assert delta(before, after, "paas_reconcile_passes_total", result="ok") == 1
    assert delta(before, after, "paas_reconcile_pass_seconds_count") == 1
    fake_engine.available = False
    monitor.reconcile_pass()
    assert delta(after, scrape(), "paas_reconcile_passes_total", result="error") == 1


def test_http_requests_are_counted_by_view_and_status(
        alice: AbstractUser, api: Callable[..., APIClient],
        scrape: Callable[[], Samples]) -> None:
    before = scrape()
    assert api(alice).get("/api/runtimes/").status_code == 200
    assert api().get("/api/runtimes/").status_code == 401
    after = scrape()
    name = "django_http_responses_total_by_status_view_method_total"
    assert delta(before, after, name, status="200", view="api-runtimes", method="GET") == 1
    assert delta(before, after, name, status="401", view="api-runtimes", method="GET") == 1


def test_scrape_cost_at_500_slots(scrape: Callable[[], Samples]) -> None:
    """A measurement, not a timing test: prints ms per scrape with 500 slot rows (made
    directly in the database) and 500 recoveries, and checks the counts are right."""
    runtimes = list(Runtime.objects.order_by("port_min"))
    statuses = [S.IDLE, S.ASSIGNED, S.PROVISIONING, S.FAILED]
    PoolContainer.objects.bulk_create(
        PoolContainer(runtime=runtimes[i % 4], port=40000 + i, status=statuses[i % 4])
        for i in range(500))
    scrape()  # warm: the first scrape pays for imports and the engine check
    rounds = 10
    started = time.perf_counter()
    for _ in range(rounds):
        scraped = scrape()
    per_scrape = (time.perf_counter() - started) / rounds * 1000
    print(f"\nMETRIC scrape with 500 slots: {per_scrape:.1f} ms per scrape "
          f"(test client, SQLite, {rounds} scrapes)")
    assert sum(value(scraped, "paas_slots", runtime=r.name, status=s)
               for r in runtimes for s in S.values) == 500
    assert per_scrape < 1000


def test_a_failure_to_count_never_breaks_a_claim(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient],
        monkeypatch: pytest.MonkeyPatch) -> None:
    warm("nginx", 1)

    def broken(**labels: str) -> None:
        raise PermissionError("metrics directory not writable")

    monkeypatch.setattr(metrics.CLAIMS, "labels", broken)
    response = api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 201

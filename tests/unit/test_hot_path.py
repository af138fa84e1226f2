"""The launch's hot path: how many queries a launch and the cheapest authenticated read
cost (pinned, so a regression fails here), and that what it saves is never stale — the
user, their quota and their admission are read fresh with every request."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.serializers import ModelSerializer
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Admission, Quota
from deployments.models import Deployment
from pools.models import Runtime
from pools.services import _CLAIM_SQL

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)

# A launch: the user (with quota and admission joined), then in one transaction the
# counts (quota, share, line, and the revision of the runtime the process keeps), the
# claim, the stale-deployment guard and the insert; BEGIN and COMMIT are logged as
# queries too. PostgreSQL also locks the user's row (launches of one user take turns).
LAUNCH_QUERIES = 5 + 2
BASELINE_QUERIES = 2  # the user, the (empty) list


def _launch_queries() -> int:
    return LAUNCH_QUERIES + int(connection.features.has_select_for_update)


def launch(client: APIClient, runtime: str = "nginx") -> tuple[int, dict, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/deployments/", {"runtime": runtime}, format="json")
    return response.status_code, response.json(), len(queries.captured_queries)


def test_a_launch_costs_a_fixed_number_of_queries(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    warm("nginx", 3)
    client = api(alice)
    launch(client)  # the process's first may read once what it then keeps (metrics)
    for _ in range(2):
        status, _, queries = launch(client)
        assert (status, queries) == (201, _launch_queries())


def test_the_baseline_read_costs_two_queries(
        alice: AbstractUser, api: Callable[..., APIClient],
        django_assert_num_queries: Callable) -> None:
    client = api(alice)
    with django_assert_num_queries(BASELINE_QUERIES):
        assert client.get("/api/deployments/").json() == []


def test_the_list_reads_each_runtime_and_quota_once(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient],
        django_assert_num_queries: Callable) -> None:
    warm("nginx", 3)
    warm("python", 1)
    client = api(alice)
    Quota.objects.create(user=alice, max_deployments=10)
    for runtime in ["nginx", "nginx", "nginx", "python"]:
        assert launch(client, runtime)[0] == 201
    # the user (quota joined), the list (slots joined), nginx's and python's policies
    with django_assert_num_queries(BASELINE_QUERIES + 2):
        assert len(client.get("/api/deployments/").json()) == 4


def test_a_quota_change_applies_to_the_next_launch(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    warm("nginx", 3)
    client = api(alice)
    Quota.objects.create(user=alice, max_deployments=1)
    assert launch(client)[0] == 201
    status, body, _ = launch(client)
    assert (status, body["code"]) == (429, "quota_exceeded")
    Quota.objects.filter(user=alice).update(max_deployments=2)
    assert launch(client)[0] == 201
    Quota.objects.filter(user=alice).delete()  # back to the default (3)
    assert launch(client)[0] == 201


def test_approval_and_deactivation_apply_to_the_next_request(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    warm("nginx", 2)
    client = api(alice)
    admission = Admission.objects.create(user=alice)  # signed up, waiting for approval
    status, body, _ = launch(client)
    assert (status, body["code"]) == (403, "approval_pending")
    Admission.objects.filter(pk=admission.pk).update(approved_at="2026-01-01T00:00Z")
    assert launch(client)[0] == 201
    alice.is_active = False
    alice.save()
    assert client.get("/api/deployments/").status_code == 401
    assert launch(client)[0] == 401


def test_the_launch_answer_uses_the_users_own_lifetime(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    warm("nginx", 1)
    Runtime.objects.filter(name="nginx").update(max_age=3600)
    Quota.objects.create(user=alice, max_age=60)  # staff's override wins
    status, body, _ = launch(api(alice))
    assert status == 201
    created, expires = parse_datetime(body["created_at"]), parse_datetime(body["expires_at"])
    assert created is not None and expires is not None
    assert expires - created == timedelta(seconds=60)


def test_requests_keep_their_database_connection(alice: AbstractUser) -> None:
    """Opening an SQLite connection (and its PRAGMAs) cost each request about a
    millisecond, a third of the cheapest one: a thread's connection serves its next
    request too (CONN_MAX_AGE, as on PostgreSQL)."""
    app = WSGIHandler()  # as gunicorn calls it: the request signals close connections
    token = RefreshToken.for_user(alice).access_token
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/deployments/",
               "SERVER_NAME": "testserver", "SERVER_PORT": "80", "wsgi.input": io.BytesIO(),
               "HTTP_AUTHORIZATION": f"Bearer {token}", "wsgi.url_scheme": "http"}
    answers = []
    for _ in range(2):
        app(dict(environ), lambda status, headers, exc_info=None: answers.append(status))
        answers.append(connection.connection)
    assert answers[0] == answers[2] == "200 OK"
    assert answers[1] is not None and answers[3] is answers[1]


def test_the_claim_takes_an_idle_slot_without_sorting_the_pool(warm: Callable) -> None:
    """The claim runs inside the write lock: a sort of every idle slot (it once picked a
    random one) made each claim's cost grow with the pool."""
    warm("nginx", 3)
    explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    nginx = Runtime.objects.get(name="nginx")
    with connection.cursor() as cursor:
        cursor.execute(explain + _CLAIM_SQL.format(lock=lock), [None, None, None, nginx.pk])
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "TEMP B-TREE" not in plan and "Sort" not in plan


@pytest.mark.vendor
@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"],
                    reason="prepared statements are PostgreSQL's")
def test_postgresql_prepares_a_launchs_statements_once_per_connection(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    """The server parsed and planned every statement of every launch again: prepared
    (on their second run in a connection), a burst of launches cost the PostgreSQL server
    about a third less CPU."""
    warm("nginx", 3)
    client = api(alice)
    for _ in range(2):
        assert launch(client)[0] == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = "\n".join(row[0] for row in cursor.fetchall())
    assert "UPDATE pools_poolcontainer" in prepared  # the claim
    assert 'INSERT INTO "deployments_deployment"' in prepared


@pytest.mark.vendor
@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"],
                    reason="prepared statements are PostgreSQL's")
def test_a_prepared_claim_survives_a_column_added_under_it(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> None:
    """A migration (another process) adds a slot column while the web runs: a prepared
    claim that returned ``*`` failed every launch ("cached plan must not change result
    type") until its connection was recycled. It names its columns."""
    import psycopg

    warm("nginx", 3)
    client = api(alice)
    for _ in range(2):
        assert launch(client)[0] == 201

    def other_connection(sql: str) -> None:
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            other.execute(sql)

    other_connection("ALTER TABLE pools_poolcontainer ADD COLUMN added_later integer")
    try:
        assert launch(client)[0] == 201
    finally:
        other_connection("ALTER TABLE pools_poolcontainer DROP COLUMN added_later")


def test_answers_build_the_fields_once_and_each_binds_its_own(
        alice: AbstractUser, bob: AbstractUser, warm: Callable,
        api: Callable[..., APIClient]) -> None:
    """Building a serializer's fields was half of a launch answer's cost: they are built
    once per class, and each answer binds copies (its own request, its own host)."""
    warm("nginx", 3)
    answers = []
    with mock.patch.object(ModelSerializer, "get_fields", autospec=True,
                           side_effect=ModelSerializer.get_fields) as built:
        for user, host in [(alice, "a.example"), (bob, "b.example"), (alice, "c.example")]:
            response = api(user).post("/api/deployments/", {"runtime": "nginx"},
                                      format="json", HTTP_HOST=host)
            answers.append((response.status_code, response.json()["url"]))
    assert built.call_count <= 1  # none when an earlier test built them
    ports = Deployment.objects.order_by("pk").values_list("port", flat=True)
    assert answers == [(201, f"http://{host}:{port}/")
                       for host, port in zip(["a.example", "b.example", "c.example"], ports,
                                             strict=True)]


def test_a_launch_that_finds_a_converge_requested_only_reads_the_mark(
        alice: AbstractUser, warm: Callable, api: Callable[..., APIClient],
        settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch) -> None:
    """Elastic pools: each launch asks for a converge, and all but the first of a burst
    find it asked already. The database cache's add() found that out inside a write
    transaction of its own (a failing INSERT and a rollback): one read does."""
    import django_q.tasks

    queued: list[tuple] = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda *args, **kw: queued.append(args))
    settings.PAAS_ELASTIC, settings.PAAS_TASKS_INLINE = True, False
    warm("nginx", 3)
    client = api(alice)
    launch(client)
    with CaptureQueriesContext(connection) as queries:
        assert client.post("/api/deployments/", {"runtime": "nginx"},
                           format="json").status_code == 201
    cache_queries = [q["sql"] for q in queries.captured_queries if "paas_cache" in q["sql"]]
    assert len(cache_queries) == 1 and cache_queries[0].startswith("SELECT")
    assert queued == [("pools.tasks.pool_converge", "nginx")]


def test_a_launch_ends_a_deployment_left_active_on_its_idle_slot(
        alice: AbstractUser, bob: AbstractUser, warm: Callable,
        api: Callable[..., APIClient]) -> None:
    """A slot released behind its deployment's back (an operator deleted the row, a
    crash between the two writes) must not let the old deployment act on the next
    owner's container: the launch that takes the slot ends it."""
    [slot] = warm("nginx", 1)
    stale = Deployment.objects.create(user=bob, slot=slot, runtime_name="nginx",
                                      port=slot.port, status=Deployment.Status.ACTIVE)
    status, body, _ = launch(api(alice))
    assert (status, body["port"]) == (201, slot.port)
    stale.refresh_from_db()
    assert (stale.status, stale.ended_reason) == ("released", "slot_lost")
    assert stale.released_at is not None
    assert abs(stale.released_at - parse_datetime(body["created_at"])) < timedelta(seconds=5)

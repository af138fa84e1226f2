"""Hostnames without a real Caddy (its admin endpoint points at a closed port, so every
sync fails the way a stopped Caddy does): fresh unguessable slugs kept through
recoveries, alias names checked, the ``ask`` endpoint, the API fields, and the config
Caddy would get."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser, User
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from deployments.models import Deployment
from pools import hostnames, proxy, services
from pools.models import PoolContainer
from tests.live import free_port

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def caddy_down(settings: Settings) -> None:
    settings.PAAS_CADDY_ADMIN = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings.PAAS_HTTPS_PORT = 8443


@pytest.fixture
def launched(alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> dict:
    warm("nginx", 2)
    response = api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 201
    return dict(response.json())


def test_every_idle_slot_has_its_own_unguessable_slug(warm: Callable) -> None:
    slots = warm("nginx", 3)
    slugs = {slot.slug for slot in slots}
    assert len(slugs) == 3
    assert all(len(s) == hostnames.SLUG_LENGTH and hostnames.LABEL.match(s) for s in slugs)


def test_launch_answers_with_the_https_address_pending_while_caddy_is_down(
        launched: dict) -> None:
    slot = PoolContainer.objects.get(port=launched["port"])
    assert launched["hostname"] == f"{slot.slug}.apps.localhost"
    assert launched["https_url"] == f"https://{slot.slug}.apps.localhost:8443/"
    assert launched["https_live"] is False
    assert launched["url"].startswith("http://") and launched["alias"] == ""


def test_https_live_once_the_route_is_in(launched: dict, alice: AbstractUser,
                                         api: Callable[..., APIClient]) -> None:
    slot = PoolContainer.objects.get(port=launched["port"])
    PoolContainer.objects.filter(pk=slot.pk).update(
        routed_hosts=hostnames.app_hostname(slot.slug))
    body = api(alice).get(f"/api/deployments/{launched['id']}/").json()
    assert body["https_live"] is True


def test_no_https_fields_without_a_caddy(settings: Settings, launched: dict, alice: AbstractUser,
                                         api: Callable[..., APIClient]) -> None:
    settings.PAAS_CADDY_ADMIN = ""
    body = api(alice).get(f"/api/deployments/{launched['id']}/").json()
    assert body["hostname"] is None and body["https_url"] is None


def test_page_shows_the_https_address_first_and_says_when_it_is_pending(
        launched: dict, alice: User) -> None:
    client = Client()
    client.force_login(alice)
    page = client.get(f"/deployments/{launched['id']}/").content.decode()
    assert page.index(launched["https_url"]) < page.index(launched["url"])
    assert 'id="https-pending"' in page
    slot = PoolContainer.objects.get(port=launched["port"])
    PoolContainer.objects.filter(pk=slot.pk).update(
        routed_hosts=hostnames.app_hostname(slot.slug))
    assert 'id="https-pending"' not in client.get(f"/deployments/{launched['id']}/").content.decode()


def test_page_names_the_deployment_and_shows_a_bad_name_refused(
        launched: dict, alice: User) -> None:
    client = Client()
    client.force_login(alice)
    page = client.post(f"/deployments/{launched['id']}/alias/", {"alias": "WWW"}, follow=True)
    assert "lowercase letters" in page.content.decode()
    page = client.post(f"/deployments/{launched['id']}/alias/", {"alias": "ann-blog"},
                       follow=True)
    assert "https://ann-blog.apps.localhost:8443/" in page.content.decode()
    assert PoolContainer.objects.get(port=launched["port"]).alias == "ann-blog"


def test_recovery_keeps_the_slug_and_release_ends_it(launched: dict) -> None:
    slot = PoolContainer.objects.select_related("runtime").get(port=launched["port"])
    slug = slot.slug
    assert services.slot_recover(slot=slot, reason="test")
    slot.refresh_from_db()
    assert slot.status == "assigned" and slot.slug == slug
    assert services.slot_reinitialize(slot=slot)
    slot.refresh_from_db()
    assert slot.slug == slug

    deployment = Deployment.objects.get(pk=launched["id"])
    assert services.slot_release(slot=slot)
    slot.refresh_from_db()
    deployment.refresh_from_db()
    assert slot.status == "idle" and slot.slug and slot.slug != slug
    assert deployment.slug == slug  # history keeps the name it had


@pytest.mark.parametrize(("alias", "why"), [
    ("Ann-Blog", "lowercase"),
    ("a" * 64, "at most 63"),
    ("-ann", "lowercase letters"),
    ("ann-", "lowercase letters"),
    ("ann.blog", "lowercase letters"),
    ("www", "reserved"),
    ("admin", "reserved"),
])
def test_bad_alias_is_400_with_the_field_named_and_changes_nothing(
        launched: dict, alice: AbstractUser, api: Callable[..., APIClient],
        alias: str, why: str) -> None:
    response = api(alice).patch(f"/api/deployments/{launched['id']}/", {"alias": alias},
                                format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "alias" in body["fields"]
    assert why in " ".join(body["fields"]["alias"])
    assert not PoolContainer.objects.exclude(alias="").exists()


def test_alias_taken_by_another_user_is_400(
        launched: dict, alice: AbstractUser, bob: AbstractUser,
        api: Callable[..., APIClient]) -> None:
    ok = api(alice).patch(f"/api/deployments/{launched['id']}/", {"alias": "ann-blog"},
                          format="json")
    assert ok.status_code == 200
    assert ok.json()["alias"] == "ann-blog" and ok.json()["alias_live"] is False
    bobs = api(bob).post("/api/deployments/", {"runtime": "nginx"}, format="json").json()
    taken = api(bob).patch(f"/api/deployments/{bobs['id']}/", {"alias": "ann-blog"},
                           format="json")
    assert taken.status_code == 400 and "taken" in taken.json()["fields"]["alias"][0]
    other_slug = PoolContainer.objects.get(port=launched["port"]).slug
    as_slug = api(bob).patch(f"/api/deployments/{bobs['id']}/", {"alias": other_slug},
                             format="json")
    assert as_slug.status_code == 400
    assert PoolContainer.objects.get(port=bobs["port"]).alias == ""


def test_alias_is_freed_by_the_release(launched: dict, alice: AbstractUser, bob: AbstractUser,
                                       api: Callable[..., APIClient]) -> None:
    api(alice).patch(f"/api/deployments/{launched['id']}/", {"alias": "ann-blog"},
                     format="json")
    assert api(alice).delete(f"/api/deployments/{launched['id']}/").status_code == 204
    bobs = api(bob).post("/api/deployments/", {"runtime": "nginx"}, format="json").json()
    named = api(bob).patch(f"/api/deployments/{bobs['id']}/", {"alias": "ann-blog"},
                           format="json")
    assert named.status_code == 200


def test_someone_elses_deployment_cannot_be_named(
        launched: dict, bob: AbstractUser, api: Callable[..., APIClient]) -> None:
    response = api(bob).patch(f"/api/deployments/{launched['id']}/", {"alias": "mine"},
                              format="json")
    assert response.status_code == 404


def test_ask_says_yes_only_for_the_platform_and_active_hostnames(
        launched: dict, alice: AbstractUser, api: Callable[..., APIClient]) -> None:
    client = Client()
    slot = PoolContainer.objects.get(port=launched["port"])
    idle = PoolContainer.objects.exclude(pk=slot.pk).get()

    def ask(name: str) -> int:
        return client.get("/caddy/ask", {"domain": name}).status_code

    assert ask("localhost") == 200
    assert ask(f"{slot.slug}.apps.localhost") == 200
    assert ask(f"{slot.slug.upper()}.apps.localhost") == 200  # SNI is case-insensitive
    assert ask("nobody-here.apps.localhost") == 404
    assert ask(f"{idle.slug}.apps.localhost") == 404  # nobody's yet
    assert ask(f"{slot.slug}.example.com") == 404
    assert ask(f"x.{slot.slug}.apps.localhost") == 404
    assert ask("") == 404
    api(alice).delete(f"/api/deployments/{launched['id']}/")
    assert ask(f"{slot.slug}.apps.localhost") == 404


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list(config["apps"]["http"]["servers"]["paas"]["routes"])


def test_config_routes_each_named_slot_and_suspends_with_a_notice(launched: dict) -> None:
    slot = PoolContainer.objects.get(port=launched["port"])
    PoolContainer.objects.filter(pk=slot.pk).update(alias="ann-blog")
    config = proxy.caddy_config(proxy.routes_desired())
    route = next(r for r in _routes(config) if r["@id"].endswith(f"slot-{slot.pk}"))
    assert route["match"] == [{"host": [f"{slot.slug}.apps.localhost",
                                        "ann-blog.apps.localhost"]}]
    assert route["handle"][-1]["upstreams"] == [{"dial": f"127.0.0.1:{slot.port}"}]
    assert config["admin"]["config"] == {"persist": False}
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False

    hostnames.slot_suspend(slot=slot, suspended=True)
    route = next(r for r in _routes(proxy.caddy_config(proxy.routes_desired()))
                 if r["@id"].endswith(f"slot-{slot.pk}"))
    assert route["handle"][-1]["handler"] == "static_response"
    assert "suspended" in route["handle"][-1]["body"]


def test_acme_config_asks_before_each_certificate(settings: Settings) -> None:
    settings.PAAS_ACME_CA = "https://127.0.0.1:14000/dir"
    settings.PAAS_ACME_EMAIL = "ops@example.com"
    tls = proxy.caddy_config([])["apps"]["tls"]
    assert tls["automation"]["on_demand"]["ask"].endswith("/caddy/ask")
    on_demand = [p for p in tls["automation"]["policies"] if p.get("on_demand")]
    assert on_demand[0]["issuers"][0] == {"module": "acme", "ca": settings.PAAS_ACME_CA,
                                          "email": "ops@example.com"}


def test_wildcard_files_replace_a_certificate_per_hostname(settings: Settings) -> None:
    settings.PAAS_APPS_CERT_FILE, settings.PAAS_APPS_KEY_FILE = "/etc/w.crt", "/etc/w.key"
    tls = proxy.caddy_config([])["apps"]["tls"]
    assert tls["certificates"]["load_files"] == [{"certificate": "/etc/w.crt",
                                                  "key": "/etc/w.key"}]
    assert not any(p.get("on_demand") for p in tls["automation"]["policies"])


def test_reconcile_reports_caddy_down_and_marks_nothing_live(launched: dict) -> None:
    PoolContainer.objects.update(routed_hosts="stale.apps.localhost")
    result = proxy.routes_reconcile()
    assert result["ok"] is False and "does not answer" in result["error"]
    assert not PoolContainer.objects.exclude(routed_hosts="").exists()


def test_operator_suspends_and_lifts_a_hostname_in_the_admin(
        launched: dict, operator: Client) -> None:
    slot = PoolContainer.objects.get(port=launched["port"])
    url = "/admin/pools/poolcontainer/"
    page = operator.post(url, {"action": "suspend_hostname", "_selected_action": [slot.pk]},
                         follow=True)
    said = " | ".join(str(m) for m in page.context["messages"])
    assert f"suspended: {slot} ({slot.slug})" in said
    assert PoolContainer.objects.get(pk=slot.pk).suspended
    operator.post(url, {"action": "lift_suspension", "_selected_action": [slot.pk]})
    assert not PoolContainer.objects.get(pk=slot.pk).suspended


def test_port_url_avoids_the_hsts_host_and_gives_way_when_ports_are_off(
        settings: Settings, launched: dict, alice: AbstractUser,
        api: Callable[..., APIClient]) -> None:
    settings.SECURE_HSTS_SECONDS = 3600
    settings.PAAS_DOMAIN = "testserver"
    body = api(alice).get(f"/api/deployments/{launched['id']}/").json()
    assert body["url"] == f"http://apps.localhost:{launched['port']}/"
    settings.PAAS_DIRECT_PORTS = False
    body = api(alice).get(f"/api/deployments/{launched['id']}/").json()
    assert body["url"] == body["https_url"]


def test_pass_gives_idle_slots_from_before_hostnames_a_slug(warm: Callable) -> None:
    from pools.monitor import reconcile_pass

    slots = warm("nginx", 2)
    PoolContainer.objects.update(slug="")  # as after the upgrade that added hostnames
    summary = reconcile_pass(trigger="test")
    assert summary["routes"]["slugs_given"] == 2
    assert all(s.slug for s in PoolContainer.objects.filter(pk__in=[x.pk for x in slots]))

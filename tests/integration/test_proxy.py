"""HTTPS and hostnames through a real Caddy (the run's own, on loopback) in front of
real containers: a claimed slot answers on its hostname at once, a released hostname
reaches nothing, and the reconcile pass repairs every kind of route drift."""

from __future__ import annotations

import io
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser

from deployments.models import Deployment
from deployments.services import (
    deployment_alias_set,
    deployment_create,
    deployment_release,
    deployment_upload,
)
from pools import hostnames, proxy
from pools.models import PoolContainer
from pools.monitor import reconcile_pass
from tests.caddy import CaddyProcess, PebbleProcess, https_get

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def caddy() -> Iterator[CaddyProcess]:
    process = CaddyProcess()
    process.start()
    yield process
    process.remove()


@pytest.fixture(autouse=True)
def proxy_settings(settings: Any, caddy: CaddyProcess) -> CaddyProcess:
    for name, value in caddy.settings.items():
        setattr(settings, name, value)
    if caddy.proc is None:  # a test killed it
        caddy.start()
    return caddy


def hostname(slot: PoolContainer) -> str:
    return proxy.app_hostname(slot.slug)


def launch_with_page(user: AbstractUser, text: str) -> PoolContainer:
    deployment = deployment_create(user=user, runtime_name="nginx")
    deployment_upload(deployment=deployment,
                      uploads=[("index.html", io.BytesIO(text.encode()))])
    assert deployment.slot is not None
    deployment.slot.refresh_from_db()
    return deployment.slot


def test_claimed_slot_serves_the_users_file_over_https_at_once(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        caddy: CaddyProcess) -> None:
    [idle] = warm_pools(nginx=1)["nginx"]
    idle.refresh_from_db()
    assert idle.slug and hostnames.routed(idle, idle.slug)  # routed before it turned idle

    slot = launch_with_page(alice, "<h1>alice over https</h1>")

    assert slot.pk == idle.pk and slot.slug == idle.slug
    assert https_get(caddy, hostname(slot)) == (200, "<h1>alice over https</h1>")


def test_released_hostname_reaches_nothing_and_the_next_user_gets_a_new_one(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        bob: AbstractUser, caddy: CaddyProcess) -> None:
    warm_pools(nginx=1)
    slot = launch_with_page(alice, "alice's page")
    old = hostname(slot)
    deployment_release(deployment=slot.deployments.get())

    status, body = https_get(caddy, old)
    assert status == 404 and "alice" not in body
    again = launch_with_page(bob, "bob's page")
    assert again.pk == slot.pk and hostname(again) != old
    assert https_get(caddy, hostname(again)) == (200, "bob's page")
    assert https_get(caddy, old)[0] == 404


def test_named_alias_goes_live_and_suspension_shows_a_notice(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        caddy: CaddyProcess) -> None:
    warm_pools(nginx=1)
    slot = launch_with_page(alice, "ann's blog")
    deployment = slot.deployments.get()

    deployment_alias_set(deployment=deployment, alias="ann-blog")

    assert https_get(caddy, proxy.app_hostname("ann-blog")) == (200, "ann's blog")
    assert Deployment.objects.get(pk=deployment.pk).addresses["alias_live"] is True
    hostnames.slot_suspend(slot=slot, suspended=True)
    status, body = https_get(caddy, hostname(slot))
    assert status == 503 and "suspended" in body and "ann's blog" not in body
    hostnames.slot_suspend(slot=slot, suspended=False)
    assert https_get(caddy, proxy.app_hostname("ann-blog")) == (200, "ann's blog")


def test_pass_restores_every_route_after_caddy_restarts(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        caddy: CaddyProcess) -> None:
    warm_pools(nginx=2)
    slot = launch_with_page(alice, "still here")
    caddy.kill()
    caddy.start()  # persistence is off: it comes back with no routes at all
    with pytest.raises(OSError):
        https_get(caddy, hostname(slot))  # no certificate, no site

    summary = reconcile_pass(trigger="test")

    assert summary["routes"] == {"ok": True, "changed": True}
    assert https_get(caddy, hostname(slot)) == (200, "still here")
    idle = PoolContainer.objects.exclude(pk=slot.pk).get()
    assert https_get(caddy, hostname(idle))[0] == 200


def test_pass_restores_a_route_deleted_behind_our_back(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        caddy: CaddyProcess) -> None:
    warm_pools(nginx=1)
    slot = launch_with_page(alice, "back again")
    proxy.admin_request("DELETE", f"/id/paas-{_instance()}-slot-{slot.pk}")
    assert https_get(caddy, hostname(slot))[0] == 404

    assert reconcile_pass(trigger="test")["routes"]["changed"] is True
    assert https_get(caddy, hostname(slot)) == (200, "back again")


def test_pass_repairs_a_route_pointing_at_an_old_port_and_removes_a_stale_one(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        caddy: CaddyProcess) -> None:
    warm_pools(nginx=1)
    slot = launch_with_page(alice, "right port")
    route = f"/id/paas-{_instance()}-slot-{slot.pk}"
    proxy.admin_request("PATCH", f"{route}/handle/1/upstreams/0/dial", "127.0.0.1:9")
    stale = {"@id": f"paas-{_instance()}-slot-999999", "terminal": True,
             "match": [{"host": [proxy.app_hostname("stale-one")]}],
             "handle": [{"handler": "reverse_proxy",
                         "upstreams": [{"dial": f"127.0.0.1:{slot.port}"}]}]}
    proxy.admin_request("PUT", "/config/apps/http/servers/paas/routes/0", stale)
    assert https_get(caddy, hostname(slot))[0] == 502
    assert https_get(caddy, proxy.app_hostname("stale-one"))[0] == 200

    reconcile_pass(trigger="test")

    assert https_get(caddy, hostname(slot)) == (200, "right port")
    assert https_get(caddy, proxy.app_hostname("stale-one"))[0] == 404


def test_claim_works_while_caddy_is_down_and_the_pass_routes_it_later(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        caddy: CaddyProcess) -> None:
    caddy.kill()
    warm_pools(nginx=1)  # built while Caddy is down: idle anyway, not routed
    slot = launch_with_page(alice, "pending")
    assert slot.slug and not hostnames.routed(slot, slot.slug)

    caddy.start()
    reconcile_pass(trigger="test")

    slot.refresh_from_db()
    assert hostnames.routed(slot, slot.slug)
    assert https_get(caddy, hostname(slot)) == (200, "pending")


@pytest.fixture
def pebble() -> Iterator[PebbleProcess]:
    process = PebbleProcess()
    process.start()
    yield process
    process.kill()


def test_acme_on_demand_gets_certificates_only_for_names_the_ask_endpoint_knows(
        warm_pools: Callable[..., dict[str, list[PoolContainer]]], alice: AbstractUser,
        caddy: CaddyProcess, pebble: PebbleProcess, live_server: Any, settings: Any) -> None:
    """The ACME path offline: Debian's pebble as the CA, Caddy's on-demand TLS asking
    our ``/caddy/ask`` (served by the test's live server) before each certificate."""
    settings.PAAS_ACME_CA = pebble.directory
    settings.PAAS_ACME_CA_ROOT = str(pebble.tls_cert)
    settings.PAAS_DOMAIN, settings.PAAS_APPS_DOMAIN = "paas.example.com", "apps.example.com"
    settings.PAAS_PORT = int(live_server.url.rsplit(":", 1)[1])
    warm_pools(nginx=1)
    slot = launch_with_page(alice, "certified by pebble")
    context = ssl.create_default_context(cadata=pebble.root())

    assert https_get(caddy, hostname(slot), context=context, timeout=30) == (
        200, "certified by pebble")
    with pytest.raises(ssl.SSLError):  # ask said no: no certificate, handshake refused
        https_get(caddy, proxy.app_hostname("nobody-here"), context=context, timeout=30)


def _instance() -> str:
    from django.conf import settings

    return settings.PAAS_INSTANCE

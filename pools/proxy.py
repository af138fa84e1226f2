"""The front door: the only module that talks to Caddy (its JSON admin API).

Caddy's routes are derived state. The database is the truth: every slot with a slug has
one route (``<slug>.<PAAS_APPS_DOMAIN>`` and its alias → the slot's port), plus the
platform's own site. A sync builds the whole config from the rows, compares it with what
Caddy runs and loads it in one change when they differ — so many route changes cost one
config reload (Caddy reloads everything on any change: ~0.6-1 s with 200 routes), and a
restarted Caddy (config persistence off), a route deleted behind our back or one
pointing at an old port are all repaired by the same call. Nothing on the claim path
talks to Caddy: a slot's route is in place before the slot turns idle.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from pools.errors import PaasError
from pools.models import PoolContainer

log = logging.getLogger(__name__)

SUSPENDED_PAGE = (
    "<!doctype html><title>Suspended</title>"
    "<h1>This site is suspended</h1>"
    "<p>The operators of this platform have suspended this site.</p>"
)
NOT_FOUND_PAGE = "<!doctype html><title>Not found</title><h1>No site here</h1>"


class ProxyUnavailable(PaasError):
    """Caddy's admin endpoint is not reachable."""

    code = "proxy_unavailable"
    status = 503


class ProxyError(PaasError):
    """Caddy refused the change."""

    code = "proxy_error"
    status = 502


@dataclass(frozen=True)
class Route:
    slot_id: int
    hosts: tuple[str, ...]
    port: int
    suspended: bool
    node_addr: str = ""  # on a swarm, the node its port answers on


# --- the config --------------------------------------------------------------------
def enabled() -> bool:
    """False when no Caddy is configured (``PAAS_CADDY_ADMIN`` empty)."""
    return bool(settings.PAAS_CADDY_ADMIN)


def app_hostname(label: str) -> str:
    return f"{label}.{settings.PAAS_APPS_DOMAIN}"


def routes_desired() -> list[Route]:
    """One route per slot with a slug (idle slots included: their route is ready before
    a user claims them)."""
    rows = PoolContainer.objects.exclude(slug="").order_by("pk").values_list(
        "pk", "slug", "alias", "port", "suspended", "node_addr")
    return [Route(slot_id=pk, hosts=tuple(app_hostname(label) for label in (slug, alias) if label),
                  port=port, suspended=suspended, node_addr=node_addr)
            for pk, slug, alias, port, suspended, node_addr in rows]


def caddy_config(routes: list[Route]) -> dict[str, Any]:
    """Caddy's whole JSON config for these routes."""
    config = {
        "admin": {"listen": settings.PAAS_CADDY_ADMIN, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(settings.PAAS_CADDY_STORAGE)},
        "apps": {
            "http": _http_app(routes),
            "tls": _tls_app(),
            # Our own CA for the local default; never put into the host's trust store.
            "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
        },
    }
    return json.loads(json.dumps(config))  # the JSON form Caddy gives back


def caddy_bootstrap_config() -> dict[str, Any]:
    """What Caddy starts with: its admin endpoint only. The first sync loads the rest,
    so a restart never revives routes the database no longer has."""
    return {"admin": {"listen": settings.PAAS_CADDY_ADMIN, "config": {"persist": False}}}


def _route_id(name: str) -> str:
    return f"paas-{settings.PAAS_INSTANCE}-{name}"


def _http_app(routes: list[Route]) -> dict[str, Any]:
    bind = settings.PAAS_CADDY_BIND
    return {
        "http_port": settings.PAAS_HTTP_PORT,
        "https_port": settings.PAAS_HTTPS_PORT,
        "servers": {"paas": {
            "listen": [f"{bind}:{settings.PAAS_HTTPS_PORT}"],
            # Certificates come from the tls app below (one wildcard for the apps domain
            # by default), not one per route hostname.
            "automatic_https": {"disable_certificates": True},
            "routes": [_platform_route(), *(_slot_route(r) for r in routes), _fallback_route()],
        }},
    }


def _no_banner() -> dict[str, Any]:
    return {"handler": "headers", "response": {"deferred": True, "delete": ["Server"]}}


def _platform_route() -> dict[str, Any]:
    body_limit = (settings.PAAS_MAX_UPLOAD_MB + 1) * 1024 * 1024  # + multipart overhead
    return {
        "@id": _route_id("platform"),
        "match": [{"host": [settings.PAAS_DOMAIN]}],
        "handle": [
            _no_banner(),
            {"handler": "request_body", "max_size": body_limit},
            {"handler": "reverse_proxy",
             "upstreams": [{"dial": f"127.0.0.1:{settings.PAAS_PORT}"}]},
        ],
        "terminal": True,
    }


def _slot_route(route: Route) -> dict[str, Any]:
    if route.suspended:
        handler: dict[str, Any] = {
            "handler": "static_response", "status_code": 503, "body": SUSPENDED_PAGE,
            "headers": {"Content-Type": ["text/html; charset=utf-8"]}}
    else:
        upstream = route.node_addr or settings.PAAS_PROBE_HOST
        handler = {"handler": "reverse_proxy",
                   "upstreams": [{"dial": f"{upstream}:{route.port}"}]}
    return {"@id": _route_id(f"slot-{route.slot_id}"), "match": [{"host": list(route.hosts)}],
            "handle": [_no_banner(), handler], "terminal": True}


def _fallback_route() -> dict[str, Any]:
    """Unknown hostnames (a released slug) reach nothing: a plain 404."""
    return {"@id": _route_id("fallback"), "handle": [
        _no_banner(),
        {"handler": "static_response", "status_code": 404, "body": NOT_FOUND_PAGE,
         "headers": {"Content-Type": ["text/html; charset=utf-8"]}}]}


def _tls_app() -> dict[str, Any]:
    acme = bool(settings.PAAS_ACME_CA or settings.PAAS_ACME_EMAIL)
    issuer = _acme_issuer() if acme else {"module": "internal"}
    domain, apps = settings.PAAS_DOMAIN, settings.PAAS_APPS_DOMAIN
    tls: dict[str, Any] = {"automation": {"policies": []}, "certificates": {}}
    policies = tls["automation"]["policies"]
    if settings.PAAS_APPS_CERT_FILE:
        # The operator's wildcard certificate for *.apps: no certificate per slug.
        tls["certificates"]["load_files"] = [{
            "certificate": settings.PAAS_APPS_CERT_FILE, "key": settings.PAAS_APPS_KEY_FILE}]
        tls["certificates"]["automate"] = [domain]
        policies.append({"subjects": [domain], "issuers": [issuer]})
    elif acme:
        # A public CA cannot issue a wildcard without DNS: one certificate per hostname,
        # fetched at the first handshake, for the names our ask endpoint vouches for.
        tls["certificates"]["automate"] = [domain]
        policies.append({"subjects": [domain], "issuers": [issuer]})
        policies.append({"issuers": [issuer], "on_demand": True})
        tls["automation"]["on_demand"] = {
            "ask": f"http://127.0.0.1:{settings.PAAS_PORT}/caddy/ask"}
    else:
        tls["certificates"]["automate"] = [domain, f"*.{apps}"]
        policies.append({"issuers": [issuer]})
    return tls


def _acme_issuer() -> dict[str, Any]:
    issuer: dict[str, Any] = {"module": "acme"}
    if settings.PAAS_ACME_CA:
        issuer["ca"] = settings.PAAS_ACME_CA
    if settings.PAAS_ACME_EMAIL:
        issuer["email"] = settings.PAAS_ACME_EMAIL
    if settings.PAAS_ACME_CA_ROOT:
        issuer["trusted_roots_pem_files"] = [settings.PAAS_ACME_CA_ROOT]
    return issuer


# --- the admin API -----------------------------------------------------------------
class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def _connection(timeout: float) -> http.client.HTTPConnection:
    admin = settings.PAAS_CADDY_ADMIN
    if admin.startswith("unix/"):
        return _UnixConnection(admin.removeprefix("unix/"), timeout)
    host, _, port = admin.rpartition(":")
    return http.client.HTTPConnection(host or "localhost", int(port), timeout=timeout)


def admin_request(method: str, path: str, body: Any = None, *, timeout: float = 30.0) -> Any:
    """One call to Caddy's admin API; the JSON answer (None when empty). Raises
    ``ProxyUnavailable`` (not reachable) or ``ProxyError`` (an error status)."""
    conn = _connection(timeout)
    data = None if body is None else json.dumps(body).encode()
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
    except OSError as exc:
        raise ProxyUnavailable(f"Caddy's admin endpoint {settings.PAAS_CADDY_ADMIN} "
                               f"does not answer: {exc}") from exc
    finally:
        conn.close()
    if resp.status >= 400:
        raise ProxyError(f"Caddy answered {resp.status} to {method} {path}: "
                         f"{payload.decode('utf-8', 'replace')[:500]}")
    return json.loads(payload) if payload.strip() else None


@contextmanager
def _sync_lock() -> Iterator[None]:
    """One sync at a time on this host (web, workers and commands are processes): a sync
    that read the rows earlier must not load its older view over a newer one."""
    path = settings.DATA_DIR / "caddy-sync.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _syncs_done_path() -> Path:
    return settings.DATA_DIR / "caddy-sync.count"


def _syncs_done() -> int:
    """How many syncs on this host have loaded Caddy's config successfully so far."""
    try:
        return int(_syncs_done_path().read_text() or 0)
    except (OSError, ValueError):
        return 0


def _sync_counted(done: int) -> None:
    # Written in place under the lock. A reader outside it may catch the file mid-write
    # and read a smaller number (or none: 0), which only costs it a sync of its own.
    _syncs_done_path().write_text(str(done))


# --- syncing -----------------------------------------------------------------------
def routes_sync() -> bool:
    """Make Caddy's config match the database (one load, only when it differs) and
    record which hostnames are live. Returns True when this call changed Caddy's config.
    Raises ``ProxyUnavailable``/``ProxyError``; slots are then marked not routed.

    Callers that queue up behind a running sync share the next one (group commit): a
    sync that began after this call was made has read rows at least as new as the
    caller's, so once it has finished there is nothing left to do. The sync running when
    the call is made does not count (it may have read the rows before the caller's
    change); syncs are serialized, so the second one to finish after the call began
    after it. Many slots turning idle at once (a pool init) cost a few loads, not one
    each."""
    first_done = _syncs_done()
    with _sync_lock():
        done = _syncs_done()
        # (Inside a transaction our own changes are not visible to other syncs yet.)
        if done >= first_done + 2 and not transaction.get_connection().in_atomic_block:
            return False  # a sync that started after we were called has loaded our rows
        routes = routes_desired()
        wanted = caddy_config(routes)
        try:
            changed = admin_request("GET", "/config/") != wanted
            if changed:
                admin_request("POST", "/load", wanted)
        except ProxyUnavailable:
            _mark_routed([])  # a Caddy that comes back starts empty: nothing is live
            raise
        _mark_routed(routes)
        _sync_counted(done + 1)
    return changed


def routes_reconcile() -> dict[str, Any]:
    """The reconcile pass's step: repair any drift; never raises."""
    if not enabled():
        return {"ok": True, "skipped": "no Caddy configured"}
    try:
        return {"ok": True, "changed": routes_sync()}
    except PaasError as exc:
        log.warning("route sync failed: %s", exc)
        return {"ok": False, "error": str(exc)}


def slot_route_remove(slot_id: int) -> None:
    """Take one slot's route out (when a full sync was refused): a previous user's
    hostname must not reach the next user's container."""
    _route_delete(_route_id(f"slot-{slot_id}"))


def _route_delete(route_id: str) -> None:
    try:
        admin_request("DELETE", f"/id/{route_id}")
    except PaasError as exc:  # already gone, or Caddy down (then it has no routes)
        log.info("route %s not deleted: %s", route_id, exc)


def _mark_routed(routes: list[Route]) -> None:
    """Store on each slot the hostnames Caddy now serves for it."""
    live = {r.slot_id: " ".join(r.hosts) for r in routes}
    for pk, current in PoolContainer.objects.values_list("pk", "routed_hosts"):
        if current != live.get(pk, ""):
            PoolContainer.objects.filter(pk=pk).update(routed_hosts=live.get(pk, ""))

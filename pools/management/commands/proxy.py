"""``python manage.py proxy …``: the front door (Caddy) and its firewall rules. Thin:
parse, call one service, report."""

from __future__ import annotations

import json
import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pools import firewall, hostnames, proxy
from pools.errors import PaasError
from pools.models import PoolContainer


class Command(BaseCommand):
    help = "The HTTPS front door: Caddy's config, route sync, suspension, firewall rules."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("enabled", help="exit 0 when a Caddy is configured, else 1")
        sub.add_parser("site", help="print the platform's HTTPS address and the CA root")
        sub.add_parser("bootstrap", help="print the config Caddy starts with (admin only)")
        sub.add_parser("config", help="print the whole config the platform loads")
        sync = sub.add_parser("sync", help="make Caddy's routes match the database now")
        sync.add_argument("--wait", type=float, default=0.0,
                          help="seconds to wait for Caddy's admin endpoint to answer")
        for name in ("suspend", "lift"):
            cmd = sub.add_parser(name, help=f"{name} a slot's hostnames (notice page)")
            cmd.add_argument("slot", type=int)
        fw = sub.add_parser("firewall", help="install (or --remove, --show) the host rules")
        fw.add_argument("--remove", action="store_true")
        fw.add_argument("--show", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, "do_" + action)(**options)
        except PaasError as exc:
            raise CommandError(str(exc)) from exc

    def do_enabled(self, **_: Any) -> None:
        sys.exit(0 if proxy.enabled() else 1)

    def do_site(self, **_: Any) -> None:
        from django.conf import settings

        self.stdout.write(hostnames.https_url(settings.PAAS_DOMAIN))
        root = settings.PAAS_CADDY_STORAGE / "pki" / "authorities" / "local" / "root.crt"
        self.stdout.write(f"internal CA root (curl --cacert, or trust it in a browser): {root}")

    def do_bootstrap(self, **_: Any) -> None:
        self.stdout.write(json.dumps(proxy.caddy_bootstrap_config(), indent=2))

    def do_config(self, **_: Any) -> None:
        self.stdout.write(json.dumps(proxy.caddy_config(proxy.routes_desired()), indent=2))

    def do_sync(self, *, wait: float, **_: Any) -> None:
        if not proxy.enabled():
            raise CommandError("no Caddy configured (PAAS_CADDY_ADMIN is empty)")
        deadline = time.monotonic() + wait
        while True:
            try:
                changed = proxy.routes_sync()
                break
            except proxy.ProxyUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        routes = len(proxy.routes_desired())
        self.stdout.write(f"{'loaded' if changed else 'already current'}: {routes} route(s)")

    def do_suspend(self, *, slot: int, **_: Any) -> None:
        self._suspend(slot, suspended=True)

    def do_lift(self, *, slot: int, **_: Any) -> None:
        self._suspend(slot, suspended=False)

    def _suspend(self, slot_id: int, *, suspended: bool) -> None:
        slot = PoolContainer.objects.filter(pk=slot_id).first()
        if slot is None:
            raise CommandError(f"no slot {slot_id}")
        changed = hostnames.slot_suspend(slot=slot, suspended=suspended)
        verb = "suspended" if suspended else "lifted"
        self.stdout.write(f"{verb}: {slot} ({slot.slug})" if changed
                          else f"nothing to do: {slot} is not assigned, or already {verb}")

    def do_firewall(self, *, remove: bool, show: bool, **_: Any) -> None:
        if show:
            for line in firewall.firewall_installed():
                self.stdout.write(line)
        elif remove:
            self.stdout.write(f"removed {firewall.firewall_remove()} rule(s)")
        else:
            added = firewall.firewall_install()
            self.stdout.write("\n".join(f"added {rule}" for rule in added)
                              or "firewall rules already in place")

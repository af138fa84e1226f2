"""Host firewall rules that come with the front door (the only module that runs
iptables). Every rule carries the comment ``paas-<instance>``, so installing is
idempotent and removing takes ours only.

- Containers (and anything else not on the loopback interface) cannot open connections
  to the platform's own services on this host: gunicorn's port and Caddy's admin port.
  Both listen on loopback already; the rules hold even if one is misconfigured to listen
  on every interface, where a container would reach it through its bridge gateway.
- Packets for 127.0.0.0/8 that do not arrive on ``lo`` are dropped before routing:
  Docker's loopback-published ports otherwise answer crafted packets from the LAN
  (moby#41872).
"""

from __future__ import annotations

import shutil
import subprocess

from django.conf import settings

from pools.errors import PaasError


class FirewallError(PaasError):
    """iptables refused a rule."""

    code = "firewall_error"
    status = 500


def _comment() -> str:
    return f"paas-{settings.PAAS_INSTANCE}"[:255]


def protected_ports() -> list[int]:
    """The platform's own TCP ports on this host: gunicorn and Caddy's admin (TCP)."""
    ports = [settings.PAAS_PORT]
    admin = settings.PAAS_CADDY_ADMIN
    if admin and not admin.startswith("unix/"):
        ports.append(int(admin.rpartition(":")[2]))
    return ports


def rules() -> list[tuple[str, str, list[str]]]:
    """(table, chain, rule) for each rule we install."""
    tag = ["-m", "comment", "--comment", _comment()]
    wanted = [("filter", "INPUT", ["!", "-i", "lo", "-p", "tcp", "--dport", str(port),
                                   *tag, "-j", "DROP"])
              for port in protected_ports()]
    wanted.append(("raw", "PREROUTING", ["!", "-i", "lo", "-d", "127.0.0.0/8", *tag,
                                         "-j", "DROP"]))
    return wanted


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("iptables")
    if binary is None:
        raise FirewallError("iptables is not installed (apt-get install iptables)")
    return subprocess.run([binary, "-w", *args], capture_output=True, text=True, check=False)


def firewall_install() -> list[str]:
    """Add the rules that are missing (first in their chain). Returns those added."""
    added = []
    for table, chain, rule in rules():
        if _iptables("-t", table, "-C", chain, *rule).returncode == 0:
            continue
        result = _iptables("-t", table, "-I", chain, "1", *rule)
        if result.returncode != 0:
            raise FirewallError(f"iptables -t {table} -I {chain}: {result.stderr.strip()}")
        added.append(f"{table}/{chain}: {' '.join(rule)}")
    return added


def firewall_remove() -> int:
    """Delete every rule carrying our comment (any port, earlier settings too)."""
    removed = 0
    for table, chain in {(t, c) for t, c, _ in rules()}:
        listing = _iptables("-t", table, "-S", chain).stdout.splitlines()
        for line in listing:
            if f"--comment {_comment()} " in line + " ":
                spec = line.split()[2:]  # "-A CHAIN <rule>"
                if _iptables("-t", table, "-D", chain, *spec).returncode == 0:
                    removed += 1
    return removed


def firewall_installed() -> list[str]:
    """Our rules as iptables lists them."""
    found = []
    for table, chain in sorted({(t, c) for t, c, _ in rules()}):
        found += [f"{table}: {line}" for line in _iptables("-t", table, "-S", chain).stdout
                  .splitlines() if _comment() in line]
    return found

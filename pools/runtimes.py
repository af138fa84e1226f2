"""The four built-in runtimes and the environment overrides of their initial values."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from pools.errors import InvalidInput

# nginx and apache start as root to bind port 80 and drop to uid 1000 for their workers.
WEB_CAPS = "SETUID,SETGID,NET_BIND_SERVICE"


@dataclass(frozen=True)
class RuntimeDefaults:
    name: str
    display_name: str
    internal_port: int
    content_root: str
    port_min: int
    port_max: int
    pool_size: int
    cap_add: str
    app_runtime: bool


DEFAULTS = [
    RuntimeDefaults("nginx", "Nginx (static site)", 80, "/usr/share/nginx/html", 8000, 8099, 5, WEB_CAPS, False),
    RuntimeDefaults("apache", "Apache (static site)", 80, "/var/www/html", 8100, 8199, 3, WEB_CAPS, False),
    RuntimeDefaults("python", "Python app", 8080, "/app", 8200, 8299, 3, "", True),
    RuntimeDefaults("node", "Node.js app", 8080, "/app", 8300, 8399, 2, "", True),
]


# Where each runtime writes (the root filesystem is read-only), with each place's share
# of the container's writable space in percent: the content root (None here), /tmp and
# the runtime's own dirs, owned by uid 1000 (mode in the table). nginx buffers request
# bodies in its body temp dir (its master would chown a fresh one, which needs
# CAP_CHOWN: the mount belongs to 1000 already); apache's pid and lock dirs are under
# /run; the app runtimes have a home, and python the venv pip installs into.
WRITABLE_SHARES: dict[str, dict[str | None, tuple[int, str]]] = {
    "nginx": {None: (70, "0755"), "/tmp": (20, "1777"), "/var/lib/nginx/body": (10, "0700")},
    "apache": {None: (80, "0755"), "/tmp": (20, "1777")},
    "python": {None: (40, "0755"), "/opt/venv": (30, "0755"), "/tmp": (20, "1777"),
               "/home/paas": (10, "0755")},
    "node": {None: (60, "0755"), "/tmp": (20, "1777"), "/home/paas": (20, "0755")},
}
OTHER_SHARES: dict[str | None, tuple[int, str]] = {None: (80, "0755"), "/tmp": (20, "1777")}
RUN_DIR_MB = 8  # /run, root's: pid files and locks only


def writable_mounts(*, runtime_name: str, content_root: str, size_mb: int) -> dict[str, str]:
    """The tmpfs mounts (path → options) of a container with a read-only root: its
    writable places together hold ``size_mb`` (plus a small /run). Their files are in
    the container's memory, counted in its limit, never in image layers on the host's
    disk. Executables are allowed (pip and npm install native modules); setuid files and
    devices are not."""
    mounts = {"/run": f"rw,noexec,nosuid,nodev,size={RUN_DIR_MB}m,mode=0755"}
    for path, (share, mode) in WRITABLE_SHARES.get(runtime_name, OTHER_SHARES).items():
        size = max(1, size_mb * share // 100)
        owner = "" if mode == "1777" else ",uid=1000,gid=1000"
        mounts[path or content_root] = f"rw,exec,nosuid,nodev,size={size}m,mode={mode}{owner}"
    return mounts


def parse_sizes(text: str) -> dict[str, int]:
    """``"nginx=5,apache=3"`` → ``{"nginx": 5, "apache": 3}``; fails loudly on junk."""
    sizes: dict[str, int] = {}
    for name, value in _pairs(text, "PAAS_POOL_SIZES"):
        if not value.isdigit():
            raise InvalidInput(f"PAAS_POOL_SIZES: '{name}={value}' is not a number")
        sizes[name] = int(value)
    return sizes


def parse_ranges(text: str) -> dict[str, tuple[int, int]]:
    """``"nginx=8000-8099"`` → ``{"nginx": (8000, 8099)}``."""
    ranges: dict[str, tuple[int, int]] = {}
    for name, value in _pairs(text, "PAAS_PORT_RANGES"):
        low, _, high = value.partition("-")
        if not (low.isdigit() and high.isdigit()) or int(low) > int(high):
            raise InvalidInput(f"PAAS_PORT_RANGES: '{name}={value}' is not a range like 8000-8099")
        ranges[name] = (int(low), int(high))
    return ranges


def _pairs(text: str, setting: str) -> list[tuple[str, str]]:
    known = {runtime.name for runtime in DEFAULTS}
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in known:
            raise InvalidInput(f"{setting}: '{item}' is not NAME=VALUE for one of {sorted(known)}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def initial_values() -> list[dict[str, object]]:
    """The defaults with ``PAAS_POOL_SIZES``/``PAAS_PORT_RANGES`` applied."""
    sizes = parse_sizes(settings.PAAS_POOL_SIZES)
    ranges = parse_ranges(settings.PAAS_PORT_RANGES)
    values = []
    for runtime in DEFAULTS:
        port_min, port_max = ranges.get(runtime.name, (runtime.port_min, runtime.port_max))
        values.append({
            **runtime.__dict__,
            "pool_size": sizes.get(runtime.name, runtime.pool_size),
            "port_min": port_min,
            "port_max": port_max,
        })
    return values

"""Health: is a slot's port answering HTTP (a plain HTTP probe, not a Docker call), and
does the platform's own back end (database, Docker engine) answer?"""

import http.client
import socket
from collections.abc import Callable

from django.conf import settings
from django.db import connection

from pools.engine import get_engine


def platform_health() -> dict[str, str]:
    """``{"database": "ok", "docker": "ok"}``, or ``"unavailable: <error>"`` for a part
    that does not answer (the health endpoint answers 503 then)."""
    return {"database": _check(_ping_database), "docker": _check(lambda: get_engine().ping())}


def _ping_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as exc:  # any failure means "not answering"
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def http_answers(port: int, *, timeout: float = 1.0, host: str = "") -> bool:
    """True when something answers HTTP on ``host:port`` (any status counts)."""
    conn = http.client.HTTPConnection(host or settings.PAAS_PROBE_HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"User-Agent": "paas-health"})
        conn.getresponse().read(0)
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def port_is_free(port: int) -> bool:
    """True when nothing on the host listens on ``port`` (we can bind it ourselves)."""
    bind_ip = settings.PAAS_BIND_IP
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_ip, port))
        except OSError:
            return False
    return True

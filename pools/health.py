"""Is a slot's port answering HTTP? (The probe is plain HTTP, not a Docker call.)"""

import http.client
import socket

from django.conf import settings


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

"""A Caddy of the test run's own: its own admin port, HTTPS/HTTP ports, storage (and so
its own internal CA), started from the bootstrap config like ``make run`` does, and
killed afterwards. Plus an HTTPS client that connects to 127.0.0.1 with the right
Host/SNI (Python's resolver does not resolve ``*.localhost``)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.live import LiveStack, free_port


class CaddyProcess:
    def __init__(self, *, directory: Path | None = None) -> None:
        self.dir = directory or Path(tempfile.mkdtemp(prefix="paas-caddy-"))
        self.admin_port = free_port()
        self.https_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> dict[str, object]:
        """The platform settings that point at this Caddy."""
        return {
            "PAAS_CADDY_ADMIN": f"127.0.0.1:{self.admin_port}",
            "PAAS_HTTPS_PORT": self.https_port,
            "PAAS_HTTP_PORT": self.http_port,
            "PAAS_CADDY_BIND": "127.0.0.1",
            "PAAS_CADDY_STORAGE": self.dir / "storage",
        }

    @property
    def env(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.settings.items()}

    @property
    def root_cert(self) -> Path:
        return self.dir / "storage" / "pki" / "authorities" / "local" / "root.crt"

    def start(self) -> None:
        config = self.dir / "bootstrap.json"
        config.write_text(json.dumps({"admin": {"listen": f"127.0.0.1:{self.admin_port}",
                                                "config": {"persist": False}}}))
        log = open(self.dir / "caddy.log", "ab")  # noqa: SIM115 (lives with the process)
        home = {"HOME": str(self.dir), "XDG_DATA_HOME": str(self.dir / "xdg-data"),
                "XDG_CONFIG_HOME": str(self.dir / "xdg-config")}
        self.proc = subprocess.Popen(
            [shutil.which("caddy") or "/usr/bin/caddy", "run", "--config", str(config)],
            env={**os.environ, **home}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while not _listening(self.admin_port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"caddy did not start; see {self.dir / 'caddy.log'}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        """Killed, and its directory (config, CA, log) gone: the end of its fixture
        (``kill`` alone keeps the directory for a restart)."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def context(self) -> ssl.SSLContext:
        """Trusts this run's CA only (waits for Caddy to have written it)."""
        deadline = time.monotonic() + 15
        while not self.root_cert.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return ssl.create_default_context(cafile=str(self.root_cert))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to ``host`` (Host header and SNI) over a connection to 127.0.0.1."""

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext,
                 timeout: float = 5.0) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.tls = context

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def https_get(caddy: CaddyProcess, hostname: str, path: str = "/", *,
              timeout: float = 5.0, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """(status, body) of GET https://hostname:<caddy's port>/path with the run's CA (or
    ``context``)."""
    conn = LoopbackHTTPS(hostname, caddy.https_port, timeout=timeout,
                         context=context or caddy.context())
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


@contextmanager
def stack_behind_caddy(*, instance: str, port_base: int, sizes: str,
                       extra_env: dict[str, str] | None = None,
                       watcher: bool = False) -> Iterator[tuple[LiveStack, CaddyProcess]]:
    """A live stack (gunicorn on loopback, cluster) behind a Caddy of its own, reached at
    ``https://localhost:<caddy.https_port>/``; both stopped afterwards."""
    caddy = CaddyProcess()
    caddy.start()
    stack = LiveStack(instance=instance, port_base=port_base, sizes=sizes, watcher=watcher,
                      extra_env={**caddy.env, **(extra_env or {})})
    stack.env["PAAS_PORT"] = str(stack.port)  # Caddy's upstream: this stack's gunicorn
    try:
        with stack:
            stack.manage("proxy", "sync", "--wait", "10")
            yield stack, caddy
    finally:
        caddy.remove()


class PebbleProcess:
    """Debian's pebble, the ACME test CA, on loopback: its own TLS certificate (made with
    openssl), challenges always valid (nothing can reach us from outside), no nonce
    rejections. ``directory`` is the ACME URL, ``tls_cert`` what a client must trust to
    talk to it, ``root()`` the root its certificates chain to."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="paas-pebble-"))
        self.port, self.management_port = free_port(), free_port()
        self.tls_cert = self.dir / "cert.pem"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=pebble",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(self.dir / "key.pem"), "-out", str(self.tls_cert)],
            check=True, capture_output=True)
        config = self.dir / "pebble.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.tls_cert), "privateKey": str(self.dir / "key.pem"),
            "httpPort": free_port(), "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        log = open(self.dir / "pebble.log", "ab")  # noqa: SIM115 (lives with the process)
        env = {**os.environ, "PEBBLE_VA_ALWAYS_VALID": "1", "PEBBLE_VA_NOSLEEP": "1",
               "PEBBLE_WFE_NONCEREJECT": "0"}
        self.proc = subprocess.Popen([shutil.which("pebble") or "/usr/bin/pebble", "-config",
                                      str(config)], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while not (_listening(self.port) and _listening(self.management_port)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"pebble did not start; see {self.dir / 'pebble.log'}")
            time.sleep(0.05)

    def root(self) -> str:
        """The PEM of the root pebble signs with (new for every pebble process)."""
        context = ssl.create_default_context(cafile=str(self.tls_cert))
        conn = http.client.HTTPSConnection("127.0.0.1", self.management_port, timeout=5,
                                           context=context)
        try:
            conn.request("GET", "/roots/0")
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def kill(self) -> None:
        """Stopped, and its directory (certificate, config) removed: never restarted."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

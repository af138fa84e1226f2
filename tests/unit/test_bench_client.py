"""The benchmark's API client against a local HTTP/1.1 server: one kept connection, a
new one when the server has closed the idle one, JSON answers read."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infrastructure" / "bench"))

from common import Client  # noqa: E402


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 0.3  # the server drops a connection idle this long, as gunicorn does
    connections: set[int] = set()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.connections.add(self.client_address[1])
        data = json.dumps({"id": 7, "runtime": body["runtime"],
                           "auth": self.headers["Authorization"]}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.connections = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_claims_share_one_connection_and_survive_its_idle_close(server: str) -> None:
    client = Client(server, "tok")
    for _ in range(3):
        _, status, body = client.claim("nginx")
        assert (status, body) == (201, {"id": 7, "runtime": "nginx", "auth": "Bearer tok"})
    assert len(Handler.connections) == 1
    time.sleep(0.6)  # the server has closed the idle connection meanwhile
    _, status, body = client.claim("python")
    assert (status, body["runtime"]) == (201, "python")
    assert len(Handler.connections) == 2


def test_threads_sharing_a_client_each_get_their_own_connection(server: str) -> None:
    """The bench releases a burst's deployments from 32 threads, several per client: one
    shared http.client connection answered them out of turn (ResponseNotReady)."""
    client = Client(server, "tok")
    results: list[int] = []

    def claims() -> None:
        for _ in range(20):
            results.append(client.claim("nginx")[1])

    threads = [threading.Thread(target=claims) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [201] * 80

"""Issue 11 item 9, over real HTTP against gunicorn: a 1 GiB POST to /login/ (no account
needed) or to a deployment's upload page is answered 413 at once, and nothing of it is
spooled to the web process's temporary folder (its peak is measured while the client
keeps sending)."""

from __future__ import annotations

import re
import select
import socket
import threading
import time

from tests.http.conftest import LiveWeb

MB = 1024 * 1024
GIB = 1024 * MB
SEND_AT_MOST = 256 * MB  # what the client pushes before giving up on an answer
BOUNDARY = "paas-limit-test"


def csrf_token(web: LiveWeb) -> str:
    _status, headers, _body = web.get("/login/")
    match = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", ""))
    assert match, headers
    return match.group(1)


def multipart_head(token: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\""
            f"\r\n\r\n{token}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f"name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream"
            f"\r\n\r\n").encode()


class Flood:
    """POST ``path`` declaring ``declared`` bytes and keep sending (up to SEND_AT_MOST)
    until the server answers; sample the server's temporary folder meanwhile."""

    def __init__(self, web: LiveWeb, path: str, declared: int) -> None:
        self.web = web
        self.path = path
        self.declared = declared
        self.sent = 0
        self.peak_tmp = 0
        self.answered = threading.Event()

    def run(self, timeout: float = 30.0) -> tuple[bytes, float]:
        token = csrf_token(self.web)
        sock = socket.create_connection(("127.0.0.1", self.web.port), timeout=timeout)
        head = (f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.web.port}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {self.declared}\r\nCookie: csrftoken={token}\r\n"
                f"Connection: close\r\n\r\n").encode()
        sock.sendall(head + multipart_head(token))
        sampler = threading.Thread(target=self.sample, daemon=True)
        sender = threading.Thread(target=self.send, args=(sock,), daemon=True)
        started = time.monotonic()
        sampler.start()
        sender.start()
        try:
            answer = self.read_answer(sock, timeout)
        finally:
            self.answered.set()
            sender.join(10)
            sampler.join(10)
            sock.close()
        return answer, time.monotonic() - started

    def send(self, sock: socket.socket) -> None:
        chunk = b"\0" * MB
        try:
            while not self.answered.is_set() and self.sent < SEND_AT_MOST:
                sock.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            pass  # the server closed the connection: fine, it answered

    def sample(self) -> None:
        while not self.answered.is_set():
            self.peak_tmp = max(self.peak_tmp, self.web.tmp_bytes())
            time.sleep(0.02)
        self.peak_tmp = max(self.peak_tmp, self.web.tmp_bytes())

    def read_answer(self, sock: socket.socket, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        data = b""
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 0.2)
            if ready:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data


def test_a_gib_post_to_login_is_refused_without_being_spooled(web: LiveWeb) -> None:
    flood = Flood(web, "/login/", GIB)
    answer, seconds = flood.run()
    print(f"/login/ 1 GiB declared: answered in {seconds:.2f}s after {flood.sent / MB:.0f} MiB "
          f"sent; peak temp {flood.peak_tmp} bytes")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert flood.sent < SEND_AT_MOST  # answered before the client gave up
    assert flood.peak_tmp < MB


def test_a_gib_post_to_an_upload_page_is_refused_without_being_spooled(web: LiveWeb) -> None:
    flood = Flood(web, "/deployments/1/upload/", GIB)
    answer, seconds = flood.run()
    print(f"upload page 1 GiB declared: answered in {seconds:.2f}s after "
          f"{flood.sent / MB:.0f} MiB sent; peak temp {flood.peak_tmp} bytes")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert flood.sent < SEND_AT_MOST
    assert flood.peak_tmp < MB


def test_an_ordinary_login_post_still_works(web: LiveWeb) -> None:
    import http.client

    token = csrf_token(web)
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    conn.request("POST", "/login/", body=f"csrfmiddlewaretoken={token}&username=x&password=y",
                 headers={"Content-Type": "application/x-www-form-urlencoded",
                          "Cookie": f"csrftoken={token}"})
    response = conn.getresponse()
    assert response.status == 200  # the form again, with "wrong name or password"
    assert b"name=\"username\"" in response.read()
    conn.close()

"""The web's gunicorn worker class (paas_project.gunicorn_worker) with real processes:
when more clients connect at once than the workers have threads, every worker takes
its share instead of the first one awake taking them all (and serving them a few at a
time while the other idles)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live import ROOT, free_port

WORKERS, THREADS, CLIENTS, PAUSE = 2, 2, 8, 0.4
WORKER_CLASS = os.environ.get("TEST_WORKER_CLASS",
                              "paas_project.gunicorn_worker.BalancedThreadWorker")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[int, int], int]]:
    """``start_server(workers, threads)`` → the port of gunicorn serving pid_app."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(workers: int, threads: int) -> int:
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "tests.http.pid_app:app",
             "--bind", f"127.0.0.1:{port}", "--worker-class", WORKER_CLASS,
             "--workers", str(workers), "--threads", str(threads)],
            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 20
        while log.read_text().count("Booting worker") < workers or get(port, 0)[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(0.5)  # every worker polling
        return port

    yield start
    for proc in procs:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=15)


def get(port: int, pause: float) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"/?{pause}")
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return 0, ""
    finally:
        conn.close()


def test_clients_connecting_at_once_are_shared_by_the_workers(
        start_server: Callable[[int, int], int]) -> None:
    server = start_server(WORKERS, THREADS)
    barrier = threading.Barrier(CLIENTS)
    answers: list[tuple[int, str]] = []

    def client() -> None:
        barrier.wait()
        answers.append(get(server, PAUSE))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    assert [status for status, _ in answers] == [200] * CLIENTS
    served = Counter(pid for _, pid in answers)
    # 4 threads in all serve 8 pauses in two rounds; a worker holding more than its
    # threads' share makes the others idle and the whole take longer.
    assert sorted(served.values()) == [CLIENTS // WORKERS] * WORKERS, served
    assert wall < PAUSE * (CLIENTS // (WORKERS * THREADS) + 1), wall


def test_clients_keeping_every_thread_busy_do_not_starve_a_new_one(
        start_server: Callable[[int, int], int]) -> None:
    """One worker, each thread busy and more requests queued on kept-alive connections:
    a client connecting now is still answered soon (the worker takes it after holding
    back a moment, there being no other worker to take it)."""
    port = start_server(1, THREADS)
    stop = threading.Event()

    def hammer() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            conn.request("GET", "/?0.05")
            conn.getresponse().read()
        conn.close()

    hammers = [threading.Thread(target=hammer) for _ in range(2 * THREADS)]
    for thread in hammers:
        thread.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        status, _ = get(port, 0)
        waited = time.monotonic() - started
    finally:
        stop.set()
        for thread in hammers:
            thread.join()
    assert status == 200 and waited < 1.0, (status, waited)

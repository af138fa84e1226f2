"""Growing past SQLite: an installation that ran on SQLite is moved to PostgreSQL with
``manage.py db_move`` (platform stopped, containers left running), and starts there
with its users, deployments, files and history; then a ``pg_dump`` of it is restored
into a fresh server and the platform starts on that too. Real processes, a real
engine, throwaway PostgreSQL servers (tests/pgserver.py)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from pools.engine import DockerEngine
from tests.live import LiveStack, LiveUser
from tests.pgserver import throwaway_postgres

pytestmark = [pytest.mark.integration]
SIZES = "nginx=2,apache=0,python=0,node=0"
INSTANCE = settings.PAAS_INSTANCE + "-move"
MARKER = "<h1>alice's page, moved</h1>"


@dataclass
class Moved:
    data_dir: Path
    database_url: str
    deployment: dict
    invite_code: str


def stack_on(data_dir: Path, database_url: str | None) -> LiveStack:
    """The platform on the same data dir, with ``database_url`` (None: its SQLite)."""
    return LiveStack(instance=INSTANCE, port_base=settings.LIVE_PORT_BASE, sizes=SIZES,
                     data_dir=data_dir, watcher=False,
                     extra_env={"PAAS_DATABASE_URL": database_url} if database_url else {})


@contextmanager
def started(stack: LiveStack) -> Iterator[LiveStack]:
    """Started, then stopped leaving the containers to the next test (the fixture's
    stack removes them at the end)."""
    try:
        stack.start()
        yield stack
    finally:
        stack.stop_processes()


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


@pytest.fixture(scope="module")
def moved(docker_engine: DockerEngine) -> Iterator[Moved]:
    """A SQLite installation with a user, her deployment and its page, and an invite
    code; stopped, then moved into a throwaway PostgreSQL server."""
    with LiveStack(instance=INSTANCE, port_base=settings.LIVE_PORT_BASE, sizes=SIZES,
                   watcher=False) as sqlite_stack, throwaway_postgres() as url:
        alice = LiveUser(sqlite_stack, "alice")
        deployment = alice.launch("nginx")
        alice.upload(deployment, "index.html", MARKER.encode())
        code = sqlite_stack.manage("shell", "-c", (
            "from accounts.models import InviteCode\n"
            "print('CODE', InviteCode.objects.create(note='class 1').code)")).stdout
        sqlite_stack.stop_processes()  # the platform stopped; the containers run on

        move = sqlite_stack.manage("db_move", "--to", url, check=False)
        assert move.returncode == 0, move.stdout + move.stderr
        assert "every table's count matches" in move.stdout
        assert "deployments.Deployment: 1" in move.stdout, move.stdout
        yield Moved(sqlite_stack.data_dir, url, deployment, code.split("CODE ", 1)[1].split()[0])


def test_a_second_move_into_the_filled_database_is_refused(moved: Moved) -> None:
    again = stack_on(moved.data_dir, None).manage("db_move", "--to", moved.database_url,
                                                check=False)
    assert again.returncode == 1
    assert "the target database is not empty" in again.stderr, again.stderr


def test_the_moved_installation_runs_on_postgresql(moved: Moved) -> None:
    with started(stack_on(moved.data_dir, moved.database_url)) as stack:
        alice = LiveUser(stack, "alice", register=False)  # her password came along
        [shown] = alice.api("GET", "", 200)
        assert (shown["id"], shown["port"]) == (moved.deployment["id"],
                                                moved.deployment["port"])
        assert page(shown["url"]) == MARKER
        # New rows get new ids (the sequences were reset), claims and releases work.
        bob = LiveUser(stack, "bob")
        claimed = bob.launch("nginx")
        assert claimed["port"] != shown["port"]
        bob.api("DELETE", f"{claimed['id']}/", 204)
        wait_all_idle_but_one(stack)
        check = stack.manage("pool", "check", check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        invite = stack.manage("shell", "-c", (
            "from accounts.models import InviteCode\n"
            f"print(InviteCode.objects.filter(code={moved.invite_code!r}).count())")).stdout
        assert invite.strip().endswith("1"), invite


def test_a_pg_dump_restored_into_a_fresh_server_runs(moved: Moved, tmp_path: Path) -> None:
    dump = tmp_path / "paas.dump"
    run(["pg_dump", "--format=custom", "--file", str(dump), "--dbname", moved.database_url])
    with throwaway_postgres() as fresh:
        run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname", fresh, str(dump)])
        with started(stack_on(moved.data_dir, fresh)) as stack:
            alice = LiveUser(stack, "alice", register=False)
            [shown] = alice.api("GET", "", 200)
            assert shown["id"] == moved.deployment["id"]
            assert page(shown["url"]) == MARKER
            check = stack.manage("pool", "check", check=False)
            assert check.returncode == 0, check.stdout + check.stderr
    dump.unlink()


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, (cmd[0], done.stderr[-2000:])


def wait_all_idle_but_one(stack: LiveStack, timeout: float = 60) -> None:
    """The released slot is recycled: one assigned (alice's), the other idle again."""
    deadline = time.monotonic() + timeout
    while True:
        [nginx] = [r for r in json.loads(stack.manage("pool", "status", "--json").stdout)
                   if r["runtime"] == "nginx"]
        if nginx["assigned"] == 1 and nginx["idle"] == 1:
            return
        assert time.monotonic() < deadline, nginx
        time.sleep(0.5)

"""A throwaway PostgreSQL server for one test run: its own cluster in a temp dir on a
free loopback port, never the Debian-managed system cluster; stopped and deleted on exit.

``with throwaway_postgres() as url: ...`` gives a ``postgres://`` URL of an empty database
owned by a role that may create databases. PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` system user."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.live import free_port


def pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    return versions[-1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(_as_owner(cmd), stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"{cmd[0]} failed:\n" + log.read_text(errors="replace")[-2000:])


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    bin_dir = pg_bin()
    work = Path(tempfile.mkdtemp(prefix="paas-pg-"))
    work.chmod(0o700)
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    port, password = free_port(), secrets.token_hex(16)
    data, log = work / "data", work / "server.log"
    try:
        # Trust over the socket in our private dir, a password over TCP; no fsync: the
        # cluster is thrown away, speed matters, durability does not.
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--no-sync",
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"], work / "initdb.log")
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {work} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30",
              "start", "-o", options], work / "pg_ctl.log")
        _run([str(bin_dir / "psql"), "-h", str(work), "-p", str(port), "-U", "postgres",
              "-d", "postgres", "-q", "-v", "ON_ERROR_STOP=1",
              "-c", f"CREATE ROLE paas LOGIN CREATEDB PASSWORD '{password}'",
              "-c", "CREATE DATABASE paas OWNER paas"], work / "psql.log")
        yield f"postgres://paas:{password}@127.0.0.1:{port}/paas"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                                      "immediate", "-w", "-t", "30", "stop"]),
                           capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

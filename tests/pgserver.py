"""A throwaway PostgreSQL server from Python: ``infrastructure/scripts/pg-throwaway.sh``
(its own cluster in a temp dir on a free loopback port, never the system cluster),
started on entry and stopped and deleted on exit.

``with throwaway_postgres() as url: ...`` gives a ``postgres://`` URL of an empty database
owned by a role that may create databases."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.live import ROOT

SCRIPT = ROOT / "infrastructure" / "scripts" / "pg-throwaway.sh"


@contextmanager
def throwaway_postgres(*, durable: bool = False) -> Iterator[str]:
    """``durable``: on disk with fsync and synchronous commit on, as a real server runs
    (the benchmark); else in memory without them (tests)."""
    env = {**os.environ, "PG_THROWAWAY_DURABLE": "1" if durable else ""}
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, env=env)
    if started.returncode:
        raise RuntimeError(f"pg-throwaway.sh start failed:\n{started.stderr[-2000:]}")
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", started.stdout, flags=re.M))
    try:
        yield exports["PAAS_TEST_DATABASE_URL"]
    finally:
        subprocess.run([str(SCRIPT), "stop", exports["PG_THROWAWAY_DIR"]], capture_output=True)

"""The throwaway PostgreSQL server of the test scripts: it serves the command it runs,
and is gone afterwards, whatever the command's outcome."""

from __future__ import annotations

import os
import subprocess

from tests.live import ROOT

SCRIPT = str(ROOT / "infrastructure/scripts/pg-throwaway.sh")
PROBE = """
import os, psycopg
url = os.environ["PAAS_TEST_DATABASE_URL"].replace("postgres://", "postgresql://", 1)
with psycopg.connect(url) as db:
    print(db.execute("SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()[0])
print(os.environ["PG_THROWAWAY_DIR"])
"""


def test_runs_the_command_against_its_own_server_and_removes_it_even_on_failure() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PAAS_TEST_DATABASE_URL"}
    done = subprocess.run(
        [SCRIPT, "run", "--", "bash", "-c", f'python3 -c \'{PROBE}\' || exit 9; exit 7'],
        env={**env, "PATH": f"{ROOT / '.venv/bin'}:{env['PATH']}"},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 7, done.stderr  # the command's own status
    created, cluster = done.stdout.split()
    assert created == "True"  # the role may create pytest-django's test database
    assert "/paas-pg-" in cluster and not os.path.exists(cluster)

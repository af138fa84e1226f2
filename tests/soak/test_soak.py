"""The randomized soak as a test: one run per database, each in its own process (the
driver sets Django up against its live stack's database, not the test database).
Three variants: SQLite, PostgreSQL (ORM broker), and the production topology
``postgres-redis`` (PostgreSQL, Redis, four web workers, two clusters, one killed now and
then). ``PAAS_SOAK_SECONDS`` (default 50 each here: the three together keep the 150 s
the two had in ``make test``), ``PAAS_SOAK_SEED`` and ``PAAS_SOAK_DATABASES`` (default all
three) shape it; ``pytest -s`` shows the run as it goes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.live import ROOT

pytestmark = pytest.mark.soak
VARIANTS = ["sqlite", "postgres", "postgres-redis"]
DATABASES = os.environ.get("PAAS_SOAK_DATABASES", ",".join(VARIANTS)).split(",")


@pytest.mark.parametrize("database", VARIANTS)
def test_invariants_hold_under_the_randomized_soak(database: str) -> None:
    if database not in DATABASES:
        pytest.skip(f"PAAS_SOAK_DATABASES={','.join(DATABASES)}")
    seconds = float(os.environ.get("PAAS_SOAK_SECONDS", "50"))
    cmd = [sys.executable, "-m", "tests.soak.driver", "--database", database,
           "--seconds", str(seconds),
           "--instance", f"{settings.PAAS_INSTANCE}-soak",
           "--port-base", str(settings.LIVE_PORT_BASE)]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=seconds + 900)
    print(run.stdout)
    summary = [line for line in run.stdout.splitlines() if line.startswith("SOAK RESULT")]
    assert run.returncode == 0 and summary, (
        f"soak on {database} failed (exit {run.returncode}):\n"
        + "\n".join(line for line in run.stdout.splitlines() if line.startswith(
            ("SOAK", "VIOLATION"))) + "\n" + run.stderr[-3000:])

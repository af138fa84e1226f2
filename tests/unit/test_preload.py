"""The task cluster's parent process loads what tasks need and freezes the collector's
objects before django-q2 forks its processes; other commands are left as they are. The
long-running commands start without system checks, the same way everywhere."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.live import ROOT

PROBE = (
    "import sys, gc, django; sys.argv = ['manage.py', {command!r}]; django.setup(); "
    "print(gc.get_freeze_count() > 0, 'docker' in sys.modules, 'pools.tasks' in sys.modules)"
)


def loaded_after_setup(command: str) -> str:
    return subprocess.run([sys.executable, "-c", PROBE.format(command=command)], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.split("\n")[-2]


def test_the_cluster_loads_and_freezes_before_it_forks() -> None:
    assert loaded_after_setup("qcluster") == "True True True"


def test_other_commands_do_not_pay_for_it() -> None:
    assert loaded_after_setup("migrate") == "False False False"


@pytest.mark.parametrize("path", [
    "infrastructure/scripts/run-platform.sh",
    "infrastructure/roles/services/templates/paas-worker.service.j2",
    "tests/live.py",
])
def test_every_start_skips_the_system_checks(path: str) -> None:
    """The checks load the URLconf, every view and the admin: 25 MB in a process that
    uses none of it (``migrate``, run before, checks the same)."""
    text = (ROOT / path).read_text()
    starts = [line for line in text.splitlines() if "manage.py" in line
              and re.search(r"\bqcluster\b|\bwatch\b|\bcluster\b", line)]
    assert starts, path
    assert all("skip-checks" in line for line in starts), starts

"""A lab of infrastructure/scripts/swarm-lab.sh for one run: dockerds, each in a network
namespace of its own with its own data root, exec root, pid file and socket, named after
the run and removed afterwards. Used by the swarm tests (a 3-node swarm) and by the
daemon-restart test (one plain engine with --live-restore). A lab that cannot start fails
the test; it never skips it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

LAB_SCRIPT = Path(__file__).resolve().parent.parent / "infrastructure/scripts/swarm-lab.sh"


def lab_script(*args: str, timeout: float = 120) -> str:
    """``swarm-lab.sh ARGS`` (``stop``, ``start``, ``restart`` …): its output."""
    return subprocess.run([str(LAB_SCRIPT), *args], check=True, capture_output=True,
                          text=True, timeout=timeout).stdout


@contextmanager
def running_lab(lab_id: str, *up: str) -> Iterator[dict[str, str]]:
    """``swarm-lab.sh UP…`` (``up 3``, ``engine IMAGE…``) as lab ``lab_id``: its env
    (``PAAS_SWARM_*``) while it runs; ``down`` afterwards, whatever happened."""
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network namespaces, dockerd)")
    started = time.monotonic()
    try:
        result = subprocess.run([str(LAB_SCRIPT), *up], capture_output=True, text=True,
                                timeout=300, env={**os.environ, "PAAS_LAB_ID": lab_id})
        if result.returncode != 0:
            pytest.fail(f"the lab ({' '.join(up)}) did not start:\n{result.stderr[-3000:]}")
        print(f"\nMETRIC lab ({' '.join(up[:2])}) up in {time.monotonic() - started:.1f} s")
        yield dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)
    finally:
        subprocess.run([str(LAB_SCRIPT), "down", lab_id], capture_output=True, timeout=300)

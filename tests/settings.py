"""Test settings: every run gets its own instance label, data dir and port ranges, so
two runs (or a run beside a live platform) on one Docker daemon never meet."""

import os
import random
import tempfile

_run = f"{os.getpid()}{random.randint(100, 999)}"
_base = 20000 + random.randint(0, 99) * 400
os.environ.setdefault("PAAS_INSTANCE", f"test-{_run}")
os.environ.setdefault("PAAS_DATA_DIR", tempfile.mkdtemp(prefix=f"paas-test-{_run}-"))
os.environ.setdefault(
    "PAAS_PORT_RANGES",
    f"nginx={_base}-{_base + 49},apache={_base + 50}-{_base + 99},"
    f"python={_base + 100}-{_base + 149},node={_base + 150}-{_base + 199}",
)
os.environ.setdefault("PAAS_POOL_SIZES", "nginx=2,apache=1,python=1,node=1")
os.environ.setdefault("PAAS_TASKS_INLINE", "true")
os.environ.setdefault("PAAS_BIND_IP", "127.0.0.1")

# The live stack of this run (tests/live.py) uses the upper half of the block.
LIVE_PORT_BASE = _base + 200

from paas_project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users

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
    f"nginx={_base}-{_base + 99},apache={_base + 100}-{_base + 199},"
    f"python={_base + 200}-{_base + 299},node={_base + 300}-{_base + 399}",
)
os.environ.setdefault("PAAS_POOL_SIZES", "nginx=2,apache=1,python=1,node=1")
os.environ.setdefault("PAAS_TASKS_INLINE", "true")
os.environ.setdefault("PAAS_BIND_IP", "127.0.0.1")

from paas_project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users

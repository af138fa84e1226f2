"""Test settings: every run gets its own instance label, data dir, secret, database and
port ranges, so two runs (or a run beside a live platform) on one Docker daemon never
meet.

These are set whatever the environment says: a shell that exported the live platform's
``PAAS_DATA_DIR``, ``PAAS_INSTANCE`` or ``PAAS_DATABASE_URL`` (the Makefile once did) must
not make the tests write into that platform's content store or database. A run that
should use a database or Redis server of its own names it in ``PAAS_TEST_DATABASE_URL``
/ ``PAAS_TEST_REDIS_URL``.
"""

import atexit
import os
import random
import secrets
import shutil
import tempfile

_run = f"{os.getpid()}{random.randint(100, 999)}"
# Below the kernel's ephemeral ports (32768-60999): a published port that one of the
# host's own outgoing connections holds cannot be bound ("address already in use").
_base = 20000 + random.randint(0, 30) * 400
os.environ["PAAS_INSTANCE"] = f"test-{_run}"
os.environ["PAAS_DATA_DIR"] = _data_dir = tempfile.mkdtemp(prefix=f"paas-test-{_run}-")
_creator = os.getpid()


def _remove_data_dir() -> None:
    # Only by the process that made it: a forked child (a gunicorn worker) that exits
    # normally runs these handlers too, while its parent still uses the directory.
    if os.getpid() == _creator:
        shutil.rmtree(_data_dir, ignore_errors=True)


atexit.register(_remove_data_dir)
os.environ["PAAS_SECRET_KEY"] = secrets.token_urlsafe(50)
os.environ["PAAS_PORT_RANGES"] = (
    f"nginx={_base}-{_base + 49},apache={_base + 50}-{_base + 99},"
    f"python={_base + 100}-{_base + 149},node={_base + 150}-{_base + 199}"
)
for _name in ("DATABASE_URL", "REDIS_URL"):  # servers of the run's own, or none
    os.environ.pop(f"PAAS_{_name}", None)
    if os.environ.get(f"PAAS_TEST_{_name}"):
        os.environ[f"PAAS_{_name}"] = os.environ[f"PAAS_TEST_{_name}"]
for _name in ("PAAS_ADMIN_USER", "PAAS_ADMIN_PASSWORD"):
    os.environ.pop(_name, None)
os.environ.setdefault("PAAS_POOL_SIZES", "nginx=2,apache=1,python=1,node=1")
os.environ.setdefault("PAAS_TASKS_INLINE", "true")
# Fixed-size pools unless a test (or PAAS_ELASTIC=true for the run) asks for elastic ones:
# most tests count exact pools.
os.environ.setdefault("PAAS_ELASTIC", "false")
os.environ.setdefault("PAAS_BIND_IP", "127.0.0.1")
# No Caddy unless a test starts its own (tests/integration/test_proxy.py's fixture).
os.environ.setdefault("PAAS_CADDY_ADMIN", "")
# Tests use made-up hosts; the default (the configured domains) is tested on its own.
os.environ.setdefault("PAAS_ALLOWED_HOSTS", "*")

# The live stack of this run (tests/live.py) uses the upper half of the block.
LIVE_PORT_BASE = _base + 200

from paas_project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users

"""Test runs never touch a live installation (issue 17): whatever the environment says,
a run has its own data dir, instance, secret and database, and ./var is watched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FINGERPRINT = ROOT / "infrastructure" / "scripts" / "tree-fingerprint.py"

SHOW_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({"data_dir": str(settings.DATA_DIR), "instance": settings.PAAS_INSTANCE,
                  "db": str(settings.DATABASES["default"]["NAME"]),
                  "test_db": str(settings.DATABASES["default"].get("TEST", {}).get("NAME")),
                  "secret": settings.SECRET_KEY}))
"""


def _test_settings(env: dict[str, str]) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env}, check=True)
    return json.loads(result.stdout)


def test_a_live_platforms_environment_is_ignored(tmp_path: Path) -> None:
    live = tmp_path / "live-var"
    live.mkdir()
    seen = _test_settings({
        "PAAS_DATA_DIR": str(live), "PAAS_INSTANCE": "default",
        "PAAS_SECRET_KEY": "the-live-secret",
        "PAAS_DATABASE_URL": f"sqlite:///{live / 'paas.sqlite3'}",
    })
    assert not seen["data_dir"].startswith(str(live))
    assert seen["instance"].startswith("test-")
    assert seen["secret"] != "the-live-secret"
    assert str(live) not in seen["db"] and str(live) not in seen["test_db"]
    assert list(live.iterdir()) == []


def test_the_runs_own_database_server_is_used_when_named(tmp_path: Path) -> None:
    seen = _test_settings({"PAAS_DATABASE_URL": "sqlite:////live/paas.sqlite3",
                           "PAAS_TEST_DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}"})
    assert seen["db"] == str(tmp_path / "run.sqlite3")


def test_every_run_gets_a_data_dir_of_its_own() -> None:
    first, second = _test_settings({}), _test_settings({})
    assert first["data_dir"] != second["data_dir"]
    assert first["instance"] != second["instance"]
    assert not first["data_dir"].startswith(str(ROOT / "var"))


def test_the_live_stack_does_not_inherit_the_callers_platform_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.live import LiveStack

    monkeypatch.setenv("PAAS_DATABASE_URL", "postgres://live/paas")
    monkeypatch.setenv("PAAS_REDIS_URL", "redis://live/0")
    stack = LiveStack(instance="test-iso", port_base=1, sizes="nginx=1")
    try:
        assert "PAAS_DATABASE_URL" not in stack.env
        assert "PAAS_REDIS_URL" not in stack.env
        assert stack.env["PAAS_DATA_DIR"] == str(stack.data_dir)
    finally:
        stack.data_dir.rmdir()


def _fingerprint(root: Path) -> str:
    return subprocess.run([sys.executable, str(FINGERPRINT), str(root)], capture_output=True,
                          text=True, check=True).stdout


def test_the_fingerprint_of_var_sees_any_file_a_test_could_write(tmp_path: Path) -> None:
    (tmp_path / "content" / "4").mkdir(parents=True)
    (tmp_path / "secret_key").write_text("k")
    (tmp_path / "paas.sqlite3").write_text("db")
    before = _fingerprint(tmp_path)
    (tmp_path / "paas.sqlite3").write_text("the platform's own writes")
    assert _fingerprint(tmp_path) == before  # a running platform keeps using its database
    (tmp_path / "content" / "4" / "index.html").write_text("planted")
    planted = _fingerprint(tmp_path)
    assert planted != before and "content/4/index.html" in planted
    (tmp_path / "content" / "4" / "index.html").unlink()
    (tmp_path / "secret_key").write_text("K")
    assert _fingerprint(tmp_path) != before
    (tmp_path / "secret_key").write_text("k")
    (tmp_path / "test.sqlite3").write_text("")
    assert _fingerprint(tmp_path) != before  # a new database file shows by its name

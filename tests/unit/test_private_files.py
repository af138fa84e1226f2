"""Secret files are 0600 from their first byte (no chmod after the write), and an empty
PAAS_ADMIN_PASSWORD is refused instead of silently becoming a password nobody knows."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

ROOT = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chmod after the write does nothing here: what the file was created with shows."""
    monkeypatch.setattr(Path, "chmod", lambda self, mode, **kw: None)
    monkeypatch.setattr(os, "chmod", lambda path, mode, **kw: None)


@pytest.mark.django_db
def test_generated_admin_password_file_is_private_from_the_start(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        no_chmod: None) -> None:
    settings.DATA_DIR = tmp_path
    monkeypatch.delenv("PAAS_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("PAAS_ADMIN_USER", "root-op")
    call_command("ensure_admin")
    secret = tmp_path / "admin-password"
    assert _mode(secret) == 0o600
    user = get_user_model().objects.get(username="root-op")
    assert user.check_password(secret.read_text().strip())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin-password"]  # no temp left


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_admin_password_is_refused(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                                         tmp_path: Path, value: str) -> None:
    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("PAAS_ADMIN_PASSWORD", value)
    monkeypatch.setenv("PAAS_ADMIN_USER", "root-op")
    with pytest.raises(CommandError, match="PAAS_ADMIN_PASSWORD is set but empty"):
        call_command("ensure_admin")
    assert not get_user_model().objects.filter(username="root-op").exists()
    assert not (tmp_path / "admin-password").exists()


def test_development_secret_key_file_is_private_from_the_start(tmp_path: Path) -> None:
    code = ("import os, pathlib; pathlib.Path.chmod = lambda *a, **k: None; "
            "os.chmod = lambda *a, **k: None; import paas_project.settings as s; "
            "print(len(s.SECRET_KEY))")
    env = {**os.environ, "PAAS_DATA_DIR": str(tmp_path), "PAAS_SECRET_KEY": ""}
    first = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True)
    key_file = tmp_path / "secret_key"
    assert _mode(key_file) == 0o600
    key = key_file.read_text()
    assert int(first.stdout) >= 50
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    assert key_file.read_text() == key  # kept across restarts

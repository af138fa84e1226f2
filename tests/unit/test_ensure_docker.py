"""infrastructure/scripts/ensure-docker.sh: an engine the script starts runs without the
userland proxy; a running engine and an operator's own daemon.json are left alone. The
script runs for real against stand-ins for docker, dockerd, apt-get and systemctl (a
unit test must never start or touch the host's engine)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.live import ROOT

SCRIPT = ROOT / "infrastructure" / "scripts" / "ensure-docker.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the script's start path is root's")


def run_script(tmp_path: Path, *, engine_up: bool, config: str | None) -> tuple[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = tmp_path / "engine-up"
    if engine_up:
        state.touch()
    stand_ins = {
        # `docker info` answers once "dockerd" has started.
        "docker": f'[ -e "{state}" ]',
        "dockerd": f'echo "$@" >"{tmp_path}/dockerd-args"; touch "{state}"',
        "apt-get": 'exit 0', "debootstrap": 'exit 0', "systemctl": 'exit 1',
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    daemon_json = tmp_path / "etc" / "daemon.json"
    if config is not None:
        daemon_json.parent.mkdir()
        daemon_json.write_text(config)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin",
           "PAAS_DOCKERD_CONFIG": str(daemon_json),
           "PAAS_DOCKERD_LOG": str(tmp_path / "dockerd.log")}
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return out, daemon_json


def test_an_engine_it_starts_runs_without_the_userland_proxy(tmp_path: Path) -> None:
    out, daemon_json = run_script(tmp_path, engine_up=False, config=None)
    assert json.loads(daemon_json.read_text()) == {"userland-proxy": False}
    args = (tmp_path / "dockerd-args").read_text().split()
    assert args[:2] == ["--config-file", str(daemon_json)] and "--live-restore" in args
    assert "engine answers" in out


def test_a_running_engine_is_left_alone_with_a_note(tmp_path: Path) -> None:
    out, daemon_json = run_script(tmp_path, engine_up=True, config=None)
    assert not daemon_json.exists()
    assert not (tmp_path / "dockerd-args").exists()
    assert "userland-proxy" in out and "restart it yourself" in out


def test_an_operators_own_daemon_json_is_kept(tmp_path: Path) -> None:
    own = '{"log-driver": "journald"}\n'
    out, daemon_json = run_script(tmp_path, engine_up=False, config=own)
    assert daemon_json.read_text() == own
    assert "restart it yourself" in out

"""gunicorn's worker settings come from the environment, and bad values fail loudly."""

from __future__ import annotations

import importlib
import os

import pytest

from paas_project import gunicorn_conf


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> object:
    for name in ("PAAS_WEB_WORKERS", "PAAS_WEB_THREADS", "PAAS_WEB_KEEPALIVE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return importlib.reload(gunicorn_conf)


def test_defaults_are_one_worker_per_core_of_eight_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch)
    assert (conf.worker_class, conf.workers, conf.threads) == (  # type: ignore[attr-defined]
        "paas_project.gunicorn_worker.BalancedThreadWorker", os.cpu_count() or 2, 8)
    assert conf.keepalive > 2  # type: ignore[attr-defined]


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch, PAAS_WEB_WORKERS="3", PAAS_WEB_THREADS="4")
    assert (conf.workers, conf.threads) == (3, 4)  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_worker_count_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="PAAS_WEB_WORKERS"):
        load(monkeypatch, PAAS_WEB_WORKERS=value)
    load(monkeypatch)  # leave the module as it was


def test_the_master_preloads_and_freezes_what_the_workers_share() -> None:
    """Whatever way gunicorn is started (systemd, run-platform.sh, the live stack), the
    master loads the app, then the URLconf with its views and the lazily loaded JWT code,
    and freezes it all out of the collector's reach before it forks the workers."""
    import gc
    import sys
    from types import SimpleNamespace

    assert gunicorn_conf.preload_app is True
    gc.unfreeze()
    try:
        gunicorn_conf.when_ready(SimpleNamespace(cfg=SimpleNamespace(preload_app=True)))
        assert gc.get_freeze_count() > 0
        assert "rest_framework_simplejwt.backends" in sys.modules
        assert "deployments.api" in sys.modules
    finally:
        gc.unfreeze()

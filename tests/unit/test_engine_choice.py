"""`PAAS_ENGINE` picks the backend; a typo fails loudly instead of running the wrong one."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from pools import engine


def test_unknown_engine_is_refused(settings, fake_engine) -> None:
    engine.set_engine(None)
    settings.PAAS_ENGINE = "fake"
    with pytest.raises(ImproperlyConfigured, match="'docker' or 'swarm'"):
        engine.get_engine()

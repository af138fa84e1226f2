"""The soak's judgement of what a user reads on their URL (tests/soak): the checker must
be able to fail, so each verdict is pinned here without Docker."""

from __future__ import annotations

from typing import Any

import pytest

from tests.soak.actors import Gate, Site, Tally, UserActor, page_body
from tests.soak.checks import serves


def ann(tally: Tally) -> UserActor:
    return UserActor("ann", token="t", base_url="http://127.0.0.1:1", quota=2,
                     slot_of=lambda port: {"port": port}, seed=1, gate=Gate(), tally=tally)


@pytest.fixture
def site() -> Site:
    return Site(id=7, port=25000, runtime="nginx", version=3, acked=3)


def judged(site: Site, body: str) -> Tally:
    tally = Tally()
    ann(tally).judge(site, 200, body)
    return tally


def test_own_latest_page_is_fine(site: Site) -> None:
    tally = judged(site, page_body("ann", 7, 3))
    assert tally.violations == [] and tally.notes["read-own"] == 1


def test_another_users_page_is_a_leak(site: Site) -> None:
    tally = judged(site, page_body("bob", 9, 1))
    assert [v.kind for v in tally.violations] == ["leak"]
    assert tally.violations[0].context["slot"] == {"port": 25000}


def test_own_page_of_another_deployment_is_a_leak_too(site: Site) -> None:
    assert [v.kind for v in judged(site, page_body("ann", 6, 3)).violations] == ["leak"]


def test_an_older_own_version_is_a_stale_read_not_a_leak(site: Site) -> None:
    tally = judged(site, page_body("ann", 7, 2))
    assert tally.violations == [] and tally.notes["stale-read"] == 1


def test_placeholder_is_nothing(site: Site) -> None:
    tally = judged(site, "<h1>Ready for your files</h1>")
    assert tally.violations == [] and tally.notes["read-nothing"] == 1


@pytest.mark.parametrize(("status", "body", "candidates", "ok"), [
    (200, "PAGE", ["PAGE"], True),
    (200, "OLD", ["PAGE"], False),
    (403, "forbidden", [None], True),
    (0, "ConnectionError", [None], False),  # nothing answering is not "no page"
    (200, page_body("ann", 7, 1), [None], False),  # a deleted page came back
    (200, "NEW", ["PAGE", "NEW"], True),  # an upload that failed on the way may be there
])
def test_serves(status: int, body: str, candidates: list[Any], ok: bool) -> None:
    assert serves(status, body, candidates) is ok

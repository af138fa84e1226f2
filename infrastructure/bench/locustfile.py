"""The claim/release mix for locust: an independent load generator that cross-checks
bench.py's burst figure with a tool we did not write.

Each locust user is one platform user with an access token minted directly (the bench
mints them with ``LiveStack.create_users``; a login per user would meet the login
throttle and PBKDF2). A user waits until every user is spawned (as bench.py's burst
starts its clients at a barrier), then claims an nginx deployment and releases it,
``BENCH_LOCUST_CYCLES`` times, and stops; the last one to finish ends the run. So the
run takes as many claims as the pool has idle slots, and locust's ``Requests/s`` (with
``--reset-stats``, counted from the moment all users are spawned) is the claim rate.

    BENCH_LOCUST_TOKENS=tokens.json BENCH_LOCUST_CYCLES=7 \\
    locust -f infrastructure/bench/locustfile.py --host http://127.0.0.1:PORT \\
        --headless -u 32 -r 32 -t 60s --reset-stats --csv bench-results/locust

``tokens.json`` is a JSON list of access tokens, at least one per user.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import HttpUser, events, task
from locust.exception import StopUser

TOKENS: list[str] = json.loads(Path(os.environ["BENCH_LOCUST_TOKENS"]).read_text())
CYCLES = int(os.environ.get("BENCH_LOCUST_CYCLES", "7"))
_next_token = itertools.count()
_all_spawned = Event()
_running = {"users": 0}


@events.spawning_complete.add_listener
def _go(user_count: int, **_: Any) -> None:
    _all_spawned.set()


class PlatformUser(HttpUser):
    # No think time: the burst's clients do not think either.
    def wait_time(self) -> float:
        return 0

    def on_start(self) -> None:
        index = next(_next_token)
        if index >= len(TOKENS):
            raise RuntimeError(f"BENCH_LOCUST_TOKENS has {len(TOKENS)} tokens, "
                               f"user {index + 1} has none")
        self.client.headers["Authorization"] = f"Bearer {TOKENS[index]}"
        _running["users"] += 1
        self.cycles = 0
        _all_spawned.wait()

    @task
    def claim_and_release(self) -> None:
        with self.client.post("/api/deployments/", json={"runtime": "nginx"},
                              name="claim", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"claim answered {resp.status_code}: {resp.text[:200]}")
                deployment = None
            else:
                deployment = resp.json()["id"]
        if deployment is not None:
            with self.client.delete(f"/api/deployments/{deployment}/", name="release",
                                    catch_response=True) as resp:
                if resp.status_code != 204:
                    resp.failure(f"release answered {resp.status_code}: {resp.text[:200]}")
        self.cycles += 1
        if self.cycles >= CYCLES:
            self.finish()

    def finish(self) -> None:
        _running["users"] -= 1
        if _running["users"] == 0 and self.environment.runner is not None:
            # Quit from a greenlet of its own (quitting stops this user's greenlet too),
            # after locust's CSV writer has had its once-a-second turn with the final
            # figures (it does not write again at shutdown).
            gevent.spawn_later(1.5, self.environment.runner.quit)
        raise StopUser()

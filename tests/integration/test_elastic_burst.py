"""A class larger than the warm pool, on live processes: gunicorn, the django-q2 cluster
and the watcher (tests/live.py) over the real engine. Forty users launch nginx at the
same moment against ``min_idle=5``; each either gets a running container at once or a
pending deployment it polls (honouring Retry-After) until it runs. With ``max_total=60``
all forty are served within the claim wait; with ``max_total=20`` exactly twenty are and
the rest get 503 with Retry-After, leaving nothing behind. After the burst, idle
containers above ``min_idle`` go after ``idle_ttl``, never an assigned one."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings

from pools.engine import DockerEngine
from tests.integration.conftest import http_get
from tests.live import LiveStack

pytestmark = pytest.mark.integration

USERS = 40
# Seconds: PAAS_CLAIM_WAIT, the time every user must be served in (issue 13). A host
# far busier than the 2-core test host builds too slowly for it; such a run may give
# more time (PAAS_TEST_BURST_CLAIM_WAIT) and say so.
# make test gives 60 s: on a quiet host the last of the 40 is served after about 25 s,
# too close to 30 s for a shared CI machine; the figure is printed (METRIC) either way.
CLAIM_WAIT = int(os.environ.get("PAAS_TEST_BURST_CLAIM_WAIT", "60"))
IDLE_TTL = 3  # seconds: short, so the shrink is seen within the test


def _ranges(base: int) -> str:
    # nginx needs room for max_total=60; the others stay empty.
    return (f"nginx={base}-{base + 69},apache={base + 70}-{base + 79},"
            f"python={base + 80}-{base + 89},node={base + 90}-{base + 99}")


@pytest.fixture
def elastic_stack(request: pytest.FixtureRequest,
                  docker_engine: DockerEngine) -> Iterator[LiveStack]:
    max_total: int = request.param
    try:
        yield from _started(max_total)
    except subprocess.CalledProcessError as exc:  # say why a set-up command failed
        raise AssertionError(f"{exc.cmd} failed:\n{exc.stdout}\n{exc.stderr}") from None


def _started(max_total: int) -> Iterator[LiveStack]:
    with LiveStack(
        instance=f"{settings.PAAS_INSTANCE}-burst{max_total}",
        port_base=settings.LIVE_PORT_BASE, sizes="nginx=5,apache=0,python=0,node=0",
        extra_env={"PAAS_ELASTIC": "true", "PAAS_CLAIM_WAIT": str(CLAIM_WAIT),
                   "PAAS_PORT_RANGES": _ranges(settings.LIVE_PORT_BASE)},
    ) as stack:
        stack.manage("pool", "set-policy", "nginx", "--min-idle", "5",
                     "--max-total", str(max_total), "--idle-ttl", str(IDLE_TTL))
        yield stack
    print(f"\n(live stack logs: {stack.data_dir}/{{web,worker}}.log)")


# --- a client, as a user's script would be ------------------------------------------
@dataclass
class Outcome:
    user: str
    codes: list[int] = field(default_factory=list)  # every answer, first the launch's
    retry_after: str | None = None  # on a 503
    deployment: dict[str, Any] | None = None  # the last view of it
    served_after: float | None = None  # seconds from the burst's start to running


def _call(stack: LiveStack, token: str, method: str, path: str,
          body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(
        stack.url + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=CLAIM_WAIT) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


def _launch_and_wait(stack: LiveStack, user: str, token: str, start: threading.Barrier,
                     started: list[float]) -> Outcome:
    outcome = Outcome(user)
    start.wait()
    code, body, headers = _call(stack, token, "POST", "/api/deployments/", {"runtime": "nginx"})
    outcome.codes.append(code)
    if code == 503:
        outcome.retry_after = headers.get("Retry-After")
    deadline = started[0] + CLAIM_WAIT + 15  # the product gives up after the wait
    while code in (200, 201, 202) and body.get("status") == "pending" \
            and time.monotonic() < deadline:
        time.sleep(float(headers.get("Retry-After") or 0.5))
        code, body, headers = _call(stack, token, "GET", f"/api/deployments/{body['id']}/")
        outcome.codes.append(code)
    if code in (200, 201, 202):
        outcome.deployment = body
        if body.get("status") == "running":
            outcome.served_after = time.monotonic() - started[0]
    return outcome


def burst(stack: LiveStack, prefix: str) -> list[Outcome]:
    """Forty users launch at the same moment; each polls until it runs or fails."""
    tokens = stack.create_users([f"{prefix}{n:02d}" for n in range(USERS)], password="pw-burst-1")
    start = threading.Barrier(USERS, action=lambda: started.append(time.monotonic()))
    started: list[float] = []
    with ThreadPoolExecutor(max_workers=USERS) as pool:
        futures = [pool.submit(_launch_and_wait, stack, name, token, start, started)
                   for name, token in tokens.items()]
        return [f.result() for f in futures]


def stack_state(stack: LiveStack) -> dict[str, Any]:
    """Slots and deployments in the stack's own database."""
    script = (
        "import json\n"
        "from pools.models import PoolContainer\n"
        "from deployments.models import Deployment\n"
        "slots = list(PoolContainer.objects.values('id', 'status', 'owner_id', 'port'))\n"
        "deps = list(Deployment.objects.values('id', 'status', 'slot_id', 'user_id',"
        " 'ended_reason'))\n"
        "print('STATE ' + json.dumps({'slots': slots, 'deployments': deps}))\n"
    )
    out = stack.manage("shell", "-c", script).stdout
    return dict(json.loads(next(x for x in out.splitlines() if x.startswith("STATE "))[6:]))


def wait_until(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _summary(outcomes: list[Outcome]) -> str:
    codes = sorted(o.codes[0] for o in outcomes)
    served = sorted(o.served_after for o in outcomes if o.served_after is not None)
    latest = f"{served[-1]:.1f}" if served else "-"
    return f"first answers {codes}; served {len(served)}, the last after {latest} s"


def _burst_reported(stack: LiveStack, class_name: str, max_total: int) -> list[Outcome]:
    """The burst, with its figures printed as a METRIC line (not asserted)."""
    outcomes = burst(stack, class_name)
    print(f"\nMETRIC burst of {USERS} on min_idle=5 max_total={max_total}, claim wait "
          f"{CLAIM_WAIT} s: {_summary(outcomes)}")
    return outcomes


# --- the tests ------------------------------------------------------------------------
@pytest.mark.parametrize("elastic_stack", [60], indirect=True)
def test_forty_at_once_all_get_a_container_and_extra_idle_ones_go_after_idle_ttl(
        elastic_stack: LiveStack) -> None:
    stack = elastic_stack
    outcomes = _burst_reported(stack, "class", 60)
    assert not [o for o in outcomes if any(code >= 500 for code in o.codes)], outcomes
    assert all(o.codes[0] in (201, 202) for o in outcomes), _summary(outcomes)
    # A pending launch not served within the claim wait gives up (not_served): running
    # means served within the wait. The time is reported, not asserted (shared host).
    unserved = [o for o in outcomes if o.served_after is None]
    assert not unserved, _summary(outcomes)
    ports = {o.deployment["port"] for o in outcomes if o.deployment}
    assert len(ports) == USERS  # forty different containers
    for port in ports:
        assert http_get(port, timeout=5)[0] == 200

    # Half the class leaves; the pool keeps what is in use plus min idle, and removes
    # the rest once it has been idle for idle_ttl (the reconcile pass does the trim).
    leavers, stayers = outcomes[: USERS // 2], outcomes[USERS // 2:]
    _release(stack, [o.deployment["id"] for o in leavers if o.deployment])
    kept = {o.deployment["port"] for o in stayers if o.deployment}
    wait_until("the released slots to be rebuilt", lambda: not [
        s for s in stack_state(stack)["slots"] if s["status"] in ("recycling", "provisioning")],
        timeout=60)
    time.sleep(IDLE_TTL + 0.5)
    stack.manage("pool", "reconcile")
    state = stack_state(stack)
    statuses = [s["status"] for s in state["slots"]]
    assert statuses.count("assigned") == USERS // 2
    assert statuses.count("idle") == 5, statuses  # min idle, the rest removed
    assert {s["port"] for s in state["slots"] if s["status"] == "assigned"} == kept
    for port in kept:
        assert http_get(port, timeout=5)[0] == 200


def _release(stack: LiveStack, deployment_ids: list[int]) -> None:
    """Release through the service, as the users' DELETE would."""
    script = (
        "from deployments.models import Deployment\n"
        "from deployments.services import deployment_release\n"
        f"for d in Deployment.objects.filter(pk__in={deployment_ids!r}):\n"
        "    assert deployment_release(deployment=d)\n"
    )
    stack.manage("shell", "-c", script)


@pytest.mark.parametrize("elastic_stack", [20], indirect=True)
def test_forty_at_once_on_max_total_twenty_serves_twenty_and_refuses_the_rest(
        elastic_stack: LiveStack) -> None:
    stack = elastic_stack
    outcomes = _burst_reported(stack, "big", 20)
    served = [o for o in outcomes if o.served_after is not None]
    refused = [o for o in outcomes if o.codes == [503]]
    assert len(served) == 20 and len(refused) == 20, _summary(outcomes)
    assert all(o.retry_after and int(o.retry_after) > 0 for o in refused)
    # Nothing else changed: twenty slots, all assigned to the twenty served; no pending
    # or other stray deployment for the refused users.
    state = stack_state(stack)
    assert len(state["slots"]) == 20
    assert all(s["status"] == "assigned" for s in state["slots"])
    assert len(state["deployments"]) == 20
    assert all(d["status"] == "active" for d in state["deployments"])
    assert {d["slot_id"] for d in state["deployments"]} == {s["id"] for s in state["slots"]}

"""A runtime's scaling policy: its bounds (port range, host memory budget), their
validation (``Runtime.clean()`` calls ``policy_check``), the per-user share of a pool,
the operators' ``pool set-policy``, and the sizes the pool converge aims at
(``pool_targets``) when pools are elastic (``PAAS_ELASTIC``).

Elastic: keep ``min_idle`` containers idle (or being built) beyond those in use and
those waiting launches need, building at least ``step`` at once when growing, never
more than ``max_total``, the port range or the host memory budget; idle containers
above that are removed after ``idle_ttl`` unused, longest-idle first."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from pools.errors import InvalidInput
from pools.models import Runtime
from pools.selectors import slots_coming_count

MEMINFO = Path("/proc/meminfo")
log = logging.getLogger(__name__)


def host_memory_available_mb() -> int:
    """The host's memory available now (``MemAvailable``), in MiB."""
    for line in MEMINFO.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise InvalidInput(f"{MEMINFO} has no MemAvailable line")


def memory_budget(*, runtime: Runtime) -> int:
    """How many containers of ``runtime`` this host can hold: those it has now (their
    memory is already out of MemAvailable) plus what fits in the memory available now,
    less ``PAAS_MEMORY_RESERVE_MB``, at the memory one container really uses
    (``mem_estimate_mb``) — not its limit, which idle containers never reach."""
    existing = runtime.slots.count() if runtime.pk else 0
    spare = max(0, host_memory_available_mb() - settings.PAAS_MEMORY_RESERVE_MB)
    return existing + spare // max(1, runtime.mem_estimate_mb)


def port_capacity(*, runtime: Runtime) -> int:
    return max(0, runtime.port_max - runtime.port_min + 1)


def max_size(*, runtime: Runtime) -> int:
    """The pool's maximum size for the share rule: ``max_total``, or the port range
    when that is blank (stable, unlike the memory available at any one moment)."""
    capacity = port_capacity(runtime=runtime)
    return capacity if runtime.max_total is None else min(runtime.max_total, capacity)


def share_limit(*, runtime: Runtime) -> int:
    """How many containers of the pool one user may hold: ``max_share`` of its maximum
    size, at least one."""
    return max(1, math.floor(runtime.max_share * max_size(runtime=runtime) + 1e-9))


# Who else wants containers of a runtime (launches waiting in deployments): pools does
# not import deployments, so deployments registers a counter here at start-up.
_demand_sources: list[Callable[[str], int]] = []


def demand_register(source: Callable[[str], int]) -> None:
    if source not in _demand_sources:
        _demand_sources.append(source)


def demand_waiting(*, runtime_name: str) -> int:
    return sum(source(runtime_name) for source in _demand_sources)


# Who wants to hear that a slot of a runtime turned idle (deployments hands it to the
# oldest waiting launch at once), registered the same way.
_idle_listeners: list[Callable[[str], object]] = []


def idle_listen(listener: Callable[[str], object]) -> None:
    if listener not in _idle_listeners:
        _idle_listeners.append(listener)


def idle_announce(*, runtime_name: str) -> None:
    """A slot of the runtime turned idle. A listener's failure is logged, never the
    build's: waiting launches are also served on their next poll."""
    for listener in _idle_listeners:
        try:
            listener(runtime_name)
        except Exception:
            log.exception("idle listener %s failed for %s", listener, runtime_name)


@dataclass(frozen=True)
class Targets:
    build_to: int  # create slots up to this many in all
    trim_to: int  # idle slots above this many in all go after idle_ttl


def ceiling(*, runtime: Runtime) -> int:
    """The most containers the pool may have now: max total, ports, host memory."""
    return min(max_size(runtime=runtime), memory_budget(runtime=runtime))


def pool_targets(*, runtime: Runtime, total: int) -> Targets:
    """What an elastic pool of ``total`` slots should grow to and shrink to."""
    # Slots neither free nor coming (in use, failed, backing off) are demand: a backed-off
    # idle slot is not claimable, so the pool builds around it like around a used one.
    free = slots_coming_count(runtime=runtime)
    demand = total - free + demand_waiting(runtime_name=runtime.name)
    wanted = max(runtime.pool_size, demand + runtime.min_idle)
    top = max(runtime.pool_size, ceiling(runtime=runtime))
    # Growing for demand builds a step at once, ahead of the next claims; the first
    # fill of an unused pool builds min idle only.
    build_to = max(wanted, total + runtime.step) if wanted > total and demand else wanted
    return Targets(build_to=min(build_to, top), trim_to=min(wanted, top))


def policy_check(*, runtime: Runtime) -> None:
    """``ValidationError`` (field → message) for a policy that cannot hold: more
    containers than ports or than the host memory budget, min idle above the maximum,
    a share outside (0, 1], a step of zero."""
    errors: dict[str, str] = {}
    capacity = port_capacity(runtime=runtime)
    if runtime.port_min > runtime.port_max:
        errors["port_max"] = f"the port range {runtime.port_min}-{runtime.port_max} is empty"
    budget = memory_budget(runtime=runtime)
    memory_note = (f"the host memory budget is {budget} containers ("
                   f"{host_memory_available_mb()} MiB available now, less a "
                   f"{settings.PAAS_MEMORY_RESERVE_MB} MiB reserve, at "
                   f"{runtime.mem_estimate_mb} MiB each)")
    if runtime.max_total is not None and runtime.max_total > capacity:
        errors["max_total"] = (f"max total {runtime.max_total} is more than the {capacity} "
                               f"ports of {runtime.port_min}-{runtime.port_max}; widen the "
                               "range or lower max total")
    elif runtime.max_total is not None and runtime.max_total > budget:
        errors["max_total"] = f"max total {runtime.max_total} does not fit: {memory_note}"
    upper = runtime.max_total if runtime.max_total is not None else min(capacity, budget)
    if runtime.pool_size > upper and "max_total" not in errors:
        errors["pool_size"] = (f"min idle {runtime.pool_size} is more than the pool may hold "
                               f"({upper}: " + (f"max total {runtime.max_total}" if
                                                runtime.max_total is not None else
                                                f"{capacity} ports; {memory_note}") + ")")
    if runtime.step < 1:
        errors["step"] = "step must be at least 1"
    if not 0 < runtime.max_share <= 1:
        errors["max_share"] = "max share is a fraction of the pool: more than 0, at most 1"
    if errors:
        raise ValidationError(errors)


def runtime_set_policy(*, runtime_name: str, min_idle: int | None = None,
                       max_total: int | None = None, clear_max_total: bool = False,
                       idle_ttl: int | None = None, step: int | None = None) -> Runtime:
    """Change a runtime's scaling policy (only the values given). A policy that cannot
    hold is refused whole with ``InvalidInput`` naming each field; nothing changes."""
    from pools.services import runtime_get

    runtime = runtime_get(name=runtime_name)
    changes = {"pool_size": min_idle, "max_total": max_total, "idle_ttl": idle_ttl,
               "step": step}
    for field, value in changes.items():
        if value is not None:
            setattr(runtime, field, value)
    if clear_max_total:
        runtime.max_total = None
    try:
        runtime.full_clean()
    except ValidationError as exc:
        fields = {("min_idle" if k == "pool_size" else k): v
                  for k, v in exc.message_dict.items()}
        raise InvalidInput("; ".join(m for msgs in fields.values() for m in msgs),
                           fields=fields) from None
    runtime.save()
    return runtime

"""Prometheus metrics: the one module that talks to ``prometheus_client``.

Two kinds, chosen by where the truth lives:

- **Facts** (slots by status, pool size, ports left, queue depth, last good pass, Docker
  reachability) are read from the database at scrape time by ``PlatformCollector``.
  Every process sees the same database, so any gunicorn worker gives the same answer and
  nothing has to be shared between processes.
- **Events** (claims, recoveries, passes; HTTP requests through django-prometheus) are
  counters and histograms in prometheus_client's multiprocess mode: each process
  (gunicorn workers, django-q2 workers, the watcher, commands) writes its own mmap file
  under ``PROMETHEUS_MULTIPROC_DIR`` (set in settings, inside the data dir, wiped by the
  run script at start) and a scrape sums them. Deriving them from history rows instead
  would lose the outcomes that leave no row (an exhausted pool, a quota refusal) and go
  backwards whenever old history is pruned.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pools.errors import PaasError
from pools.models import MonitorPass, PoolContainer, Recovery, Runtime, SlotStatus

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

# A claim is one UPDATE: single milliseconds when healthy, tens under a write convoy.
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Kill/detect → serving again: a container start plus the HTTP readiness wait.
RECOVERY_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300)
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

CLAIMS = Counter("paas_claims", "Claims (launches) by runtime and outcome.",
                 ["runtime", "outcome"])
CLAIM_SECONDS = Histogram("paas_claim_seconds", "Time to claim an idle slot (any outcome).",
                          ["runtime"], buckets=CLAIM_BUCKETS)
RECOVERIES = Counter("paas_recoveries", "Finished recoveries by trigger and outcome.",
                     ["trigger", "outcome"])
RECOVERY_SECONDS = Histogram(
    "paas_recovery_seconds", "Failure detected → replacement serving again (succeeded).",
    ["trigger"], buckets=RECOVERY_BUCKETS)
PASSES = Counter("paas_reconcile_passes", "Reconcile passes by result.", ["result"])
PASS_SECONDS = Histogram("paas_reconcile_pass_seconds", "Duration of a reconcile pass.",
                         buckets=PASS_BUCKETS)

ENGINE_CHECK_SECONDS = 10.0  # a scrape may ask Docker at most this often per process
S = SlotStatus


# --- event hooks (one line each at the call site) ------------------------------------
def claim_observed(func: F) -> F:
    """Decorate the claim service: count its outcome (``ok``, ``pending`` or the error's
    code, e.g. ``pool_exhausted``, ``quota_exceeded``, ``share_exceeded``) and
    time it. The runtime label is only ever a known runtime's name (no user input)."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = func(*args, **kwargs)
            # A launch that waits in line for a slot being built (elastic pools).
            outcome = "pending" if getattr(result, "is_pending", False) else "ok"
            return result
        except PaasError as exc:
            outcome = _claim_outcome(exc)
            raise
        finally:
            _claim_count(str(kwargs.get("runtime_name", "")), outcome,
                         time.perf_counter() - started)
    return wrapper  # type: ignore[return-value]


def _never_fails(func: F) -> F:
    """Metrics are a side show: a failure to count (an unwritable metrics directory,
    say) is logged and never breaks the claim, recovery or pass being counted."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            log.exception("could not record metrics in %s", func.__name__)
            return None
    return wrapper  # type: ignore[return-value]


@_never_fails
def _claim_count(runtime_name: str, outcome: str, seconds: float) -> None:
    runtime = _known_runtime(runtime_name)
    CLAIMS.labels(runtime=runtime, outcome=outcome).inc()
    CLAIM_SECONDS.labels(runtime=runtime).observe(seconds)


def _claim_outcome(exc: PaasError) -> str:
    if exc.code == "invalid":
        return "disabled" if "disabled" in exc.detail else "unknown_runtime"
    return exc.code


_runtimes_seen: set[str] = set()  # only names found in the database; never user input


def _known_runtime(name: str) -> str:
    if name not in _runtimes_seen and name and Runtime.objects.filter(name=name).exists():
        _runtimes_seen.add(name)
    return name if name in _runtimes_seen else "unknown"


@_never_fails
def recovery_observed(*, slot_id: int, generation: int) -> None:
    """Count a recovery that just finished (any outcome) and time a successful one."""
    row = Recovery.objects.filter(slot_id=slot_id, generation=generation).first()
    if row is None or row.outcome == Recovery.Outcome.RUNNING:
        return
    RECOVERIES.labels(trigger=row.trigger, outcome=row.outcome).inc()
    if row.outcome == Recovery.Outcome.SUCCEEDED and row.duration_seconds is not None:
        RECOVERY_SECONDS.labels(trigger=row.trigger).observe(row.duration_seconds)


@_never_fails
def pass_observed(record: MonitorPass) -> None:
    PASSES.labels(result="ok" if record.ok else "error").inc()
    if record.finished_at:
        PASS_SECONDS.observe((record.finished_at - record.started_at).total_seconds())


# --- facts, read at scrape time -----------------------------------------------------
class PlatformCollector(Collector):
    """Gauges computed from the database (and a briefly cached Docker ping)."""

    def collect(self) -> Iterator[Metric]:
        yield from _pool_metrics()
        yield from _queue_metrics()
        yield from _pass_metrics()
        yield _gauge("paas_engine_up", "1 when the Docker engine answers (cached "
                     f"{ENGINE_CHECK_SECONDS:.0f} s).", [], [([], float(engine_up()))])
        yield _gauge("paas_recoveries_running", "Recoveries under way.", [],
                     [([], Recovery.objects.filter(outcome=Recovery.Outcome.RUNNING).count())])


def _gauge(name: str, doc: str, labels: list[str],
           samples: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _pool_metrics() -> Iterator[Metric]:
    runtimes = list(Runtime.objects.all())
    counts = {(row["runtime__name"], row["status"]): row["n"] for row in
              PoolContainer.objects.values("runtime__name", "status").annotate(n=Count("id"))}
    by_status = [([r.name, status], float(counts.get((r.name, status), 0)))
                 for r in runtimes for status in S.values]
    yield _gauge("paas_slots", "Pool slots by runtime and status.", ["runtime", "status"],
                 by_status)
    yield _gauge("paas_pool_size", "Configured pool size.", ["runtime"],
                 [([r.name], float(r.pool_size)) for r in runtimes])
    yield _gauge("paas_runtime_enabled", "1 when the runtime takes claims.", ["runtime"],
                 [([r.name], float(r.enabled)) for r in runtimes])
    ports = list(PoolContainer.objects.values_list("port", flat=True))  # one query
    yield _gauge("paas_ports_free", "Ports of the runtime's range without a slot.",
                 ["runtime"], [([r.name], float(_ports_free(r, ports))) for r in runtimes])


def _ports_free(runtime: Runtime, ports: list[int]) -> int:
    used = sum(runtime.port_min <= port <= runtime.port_max for port in ports)
    return max(0, runtime.port_max - runtime.port_min + 1 - used)


def _queue_metrics() -> Iterator[Metric]:
    """django-q2's ORM broker: a row's ``lock`` is its enqueue time until a worker takes
    it, then the time it may be handed out again (in the future)."""
    from django_q.models import OrmQ

    now = timezone.now()
    rows = OrmQ.objects.filter(key=settings.Q_CLUSTER["name"])
    waiting = rows.filter(lock__lte=now).aggregate(n=Count("id"), oldest=Min("lock"))
    oldest: datetime | None = waiting["oldest"]
    yield _gauge("paas_queue_depth", "Tasks waiting for a worker.", [],
                 [([], float(waiting["n"]))])
    yield _gauge("paas_queue_running", "Tasks taken by a worker and not yet done.", [],
                 [([], float(rows.filter(lock__gt=now).count()))])
    yield _gauge("paas_queue_oldest_age_seconds", "Age of the oldest waiting task.", [],
                 [([], (now - oldest).total_seconds() if oldest else 0.0)])


def _pass_metrics() -> Iterator[Metric]:
    last = MonitorPass.objects.aggregate(ok=Max("finished_at", filter=Q(ok=True)),
                                         any=Max("finished_at"))
    yield _gauge("paas_reconcile_last_success_timestamp_seconds",
                 "When the last successful reconcile pass finished (0: never).", [],
                 [([], last["ok"].timestamp() if last["ok"] else 0.0)])
    yield _gauge("paas_reconcile_last_timestamp_seconds",
                 "When the last reconcile pass finished, whatever its result (0: never).", [],
                 [([], last["any"].timestamp() if last["any"] else 0.0)])
    yield _gauge("paas_monitor_interval_seconds", "The configured reconcile interval.", [],
                 [([], float(settings.PAAS_MONITOR_INTERVAL))])


_engine_state: dict[str, float] = {"checked": 0.0, "up": 0.0}


def engine_up() -> bool:
    """Whether Docker answers, asked at most every ENGINE_CHECK_SECONDS per process, so
    frequent scrapes never load the daemon."""
    now = time.monotonic()
    if now - _engine_state["checked"] >= ENGINE_CHECK_SECONDS or not _engine_state["checked"]:
        from pools.engine import get_engine

        try:
            get_engine().ping()
            _engine_state["up"] = 1.0
        except Exception:  # any failure is "not answering"
            _engine_state["up"] = 0.0
        _engine_state["checked"] = now
    return bool(_engine_state["up"])


# --- the scrape ----------------------------------------------------------------------
def metrics_render() -> tuple[bytes, str]:
    """The text exposition: every process's events plus the database facts."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:  # a single process (a shell, a test without the directory)
        from prometheus_client import REGISTRY

        registry = REGISTRY
    platform = CollectorRegistry()
    platform.register(PlatformCollector())
    return generate_latest(registry) + generate_latest(platform), CONTENT_TYPE_LATEST


def process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead worker's live-gauge files (its counters
    stay: they are history)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)

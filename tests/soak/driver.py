"""The randomized soak of issue 11, on the real engine with real processes.

    python -m tests.soak.driver [--seconds 120] [--seed N]
                                [--database sqlite|postgres|postgres-redis]

A live stack (gunicorn with several workers, the django-q2 cluster, the watcher; see
``tests/live.py``) with its own instance label, data dir, ports and database (SQLite, or a
throwaway PostgreSQL server; ``postgres-redis`` is the production topology: PostgreSQL,
Redis as broker and shared cache, four gunicorn workers and two clusters, one of which a
fault actor kills now and then), then for ``--seconds`` of chaos: simulated users claiming,
uploading, deleting, reading and releasing through the API, a fault injector killing and
removing the run's containers, and two operators running ``pool reconcile | reinit |
set-size | add`` at the same time. At each checkpoint and at the end everything pauses,
the platform settles (``pool reconcile``, then no slot busy and no task queued) and the
invariants are checked (``tests/soak/checks.py``). The seed fixes every actor's choices
and delays; the interleaving with real processes is not reproducible, so a finding is
described with enough context to be understood without a re-run.

Prints ``SOAK seed=…`` first and a one-line ``SOAK RESULT …`` summary last; writes the
full report (violations with context, command failures, notes) to ``soak-report.json``
in the stack's data dir. Exit status 1 when any invariant was violated.
Environment: ``PAAS_SOAK_SECONDS``, ``PAAS_SOAK_SEED``, ``PAAS_SOAK_CHECKPOINTS``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from typing import Any

from tests.live import LiveStack
from tests.pgserver import throwaway_postgres
from tests.redisserver import throwaway_redis
from tests.soak.actors import (
    AdminClient,
    ClusterKillActor,
    FaultActor,
    Gate,
    OperatorActor,
    Site,
    Tally,
    UserActor,
)

SIZES = "nginx=4,apache=2,python=2,node=0"
USERS = 6
QUOTA = 2
SETTLE_TIMEOUT = 150.0
PASS_EVERY = 30.0  # seconds between reconcile passes while settling


def parse(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(env("PAAS_SOAK_SECONDS", "120")))
    parser.add_argument("--seed", type=int,
                        default=int(env("PAAS_SOAK_SEED") or random.randrange(10**6)))
    parser.add_argument("--database", choices=["sqlite", "postgres", "postgres-redis"],
                        default="sqlite")
    parser.add_argument("--checkpoints", type=int,
                        default=int(env("PAAS_SOAK_CHECKPOINTS", "1")),
                        help="settled checks during the run (one more at the end)")
    parser.add_argument("--instance", default=f"test-soak-{os.getpid()}{random.randint(100, 999)}")
    parser.add_argument("--port-base", type=int, default=20200 + random.randint(0, 99) * 400)
    return parser.parse_args(argv)


class Soak:
    def __init__(self, args: argparse.Namespace, stack: LiveStack) -> None:
        self.args, self.stack = args, stack
        self.rng = random.Random(args.seed)
        self.gate, self.tally = Gate(), Tally()
        self.users: list[UserActor] = []
        self.actors: list[Any] = []
        self.results: list[dict[str, Any]] = []

    def start_actors(self) -> None:
        from tests.soak.checks import InvariantSampler, slot_row

        names = [f"soak-user-{i}" for i in range(USERS)]
        tokens = self.stack.create_users(names, password=f"Soak-{self.args.seed}-pass!")
        common = {"gate": self.gate, "tally": self.tally}
        admin = self.admin_client()
        self.users = [UserActor(name, token=tokens[name], base_url=self.stack.url,
                                quota=QUOTA, slot_of=slot_row,
                                seed=self.rng.getrandbits(32), **common) for name in names]
        self.actors = [*self.users,
                       FaultActor("faults", instance=self.stack.instance,
                                  seed=self.rng.getrandbits(32), **common),
                       *(OperatorActor(f"operator-{i}", stack=self.stack,
                                       admin=admin if i == 0 else None,
                                       seed=self.rng.getrandbits(32), **common)
                         for i in range(2)),
                       InvariantSampler("sampler", instance=self.stack.instance,
                                        seed=self.rng.getrandbits(32), **common)]
        if self.stack.cluster_processes > 1:
            self.actors.append(ClusterKillActor("cluster-kills", stack=self.stack,
                                                seed=self.rng.getrandbits(32), **common))
        for actor in self.actors:
            actor.start()

    def admin_client(self) -> AdminClient:
        from django.contrib.auth import get_user_model

        password = f"Soak-admin-{self.args.seed}-pass!"
        get_user_model().objects.create_superuser("soak-operator", "op@example.com", password)
        return AdminClient(self.stack.url, username="soak-operator", password=password,
                           forms=runtime_form)

    def sites(self) -> dict[str, list[Site]]:
        return {u.name: list(u.sites.values()) for u in self.users}

    def run(self) -> None:
        self.start_actors()
        started = time.monotonic()
        slices = self.args.checkpoints + 1
        for k in range(1, slices + 1):
            self.chaos(started + self.args.seconds * k / slices)
            self.checkpoint("end" if k == slices else f"checkpoint-{k}", last=k == slices)

    def chaos(self, until: float) -> None:
        while time.monotonic() < until:
            time.sleep(min(1.0, max(0.0, until - time.monotonic())))
            broken = [a for a in self.actors if a.crashed]
            if broken:
                raise RuntimeError(f"actor {broken[0].name} crashed: {broken[0].crashed!r}")

    def checkpoint(self, phase: str, *, last: bool) -> None:
        from tests.soak.checks import Checker, busy_count

        began = time.monotonic()
        self.gate.pause(finish=last)
        paused = time.monotonic()
        self.tally.phase = phase
        settle = self.settle(deadline=paused + SETTLE_TIMEOUT)
        counts = Checker(instance=self.stack.instance, tally=self.tally,
                         sites=self.sites).run()
        result = {"phase": phase, **counts, **settle, "left_busy": busy_count(),
                  "pause_seconds": round(paused - began, 1),
                  "settle_seconds": round(time.monotonic() - paused, 1)}
        self.results.append(result)
        print(f"SOAK {phase}: {json.dumps(result)}", flush=True)
        self.tally.phase = "run"
        if not last:
            self.gate.resume()

    def settle(self, *, deadline: float) -> dict[str, Any]:
        """Reconcile until nothing is busy and no slot waits in back-off (or the
        deadline passes: the checks then report what did not converge). Passes repeat
        while a slot stays busy: one whose task was lost (a killed cluster on Redis) is
        retried by the first pass after ``stuck_seconds()``, as in production."""
        from tests.soak.checks import (
            backing_off,
            busy_count,
            dead_free_slots,
            pass_changed,
            wait_quiet,
        )

        wait_quiet(timeout=min(PASS_EVERY, max(1.0, deadline - time.monotonic())))
        dead = dead_free_slots(self.stack.instance)
        for slot in dead:
            self.tally.note("dead-idle-slot-at-checkpoint", json.dumps(slot))
        passes = 0
        while True:
            passes += 1
            started_quiet = busy_count() == 0
            self.reconcile(deadline=deadline)
            # A pass that changed something, or counted while a slot was still being
            # built, may have left work for the next one: a pool one slot above its
            # size whose surplus was recycling then (only idle slots are trimmed).
            final = started_quiet and not pass_changed()
            quiet = wait_quiet(timeout=min(PASS_EVERY, max(1.0, deadline - time.monotonic())))
            wait = backing_off()  # a pass before a slot's retry time left it as it was
            if time.monotonic() >= deadline or (quiet and final and wait is None):
                break
            if wait is not None and quiet:
                if time.monotonic() + wait > deadline:
                    break
                time.sleep(wait + 0.5)
        return {"reconcile_passes": passes, "quiet": quiet,
                "dead_idle_before_settling": len(dead)}

    def reconcile(self, *, deadline: float) -> None:
        """One whole ``pool reconcile`` pass (again while another pass holds the lease
        longer than the command waits for it)."""
        while True:
            run = self.stack.manage("pool", "reconcile", check=False)
            busy = run.returncode and "still running" in run.stderr
            if run.returncode and not busy:
                self.tally.violation("reconcile-failed", (run.stdout + run.stderr)[-500:])
            if not busy or time.monotonic() > deadline:
                return
            time.sleep(1.0)

    def summary(self, minutes: float) -> str:
        t = self.tally
        ops = ",".join(f"{k}={v}" for k, v in sorted(t.ops.items()))
        faults = ",".join(f"{k}={v}" for k, v in sorted(t.faults.items()))
        end = self.results[-1] if self.results else {"converged": 0, "slots": 0}
        return (f"SOAK RESULT database={self.args.database} seed={self.args.seed} "
                f"minutes={minutes:.1f} ops[{ops}] faults[{faults}] "
                f"checkpoints={len(self.results)} violations={len(t.violations)} "
                f"slots converged={end['converged']}/{end['slots']} "
                f"failed={end.get('failed', 0)} stale-reads={t.notes['stale-read']} "
                f"dead-idle-slots={t.notes['dead-idle-slot-at-checkpoint']} "
                f"command-failures={len(t.command_failures)}")

    def report(self) -> dict[str, Any]:
        t = self.tally
        return {"seed": self.args.seed, "database": self.args.database,
                "instance": self.stack.instance, "ops": dict(t.ops),
                "statuses": dict(t.statuses), "faults": dict(t.faults),
                "notes": dict(t.notes), "note_samples": t.samples,
                "checkpoints": self.results,
                "violations": [asdict(v) for v in t.violations],
                "command_failures": t.command_failures}


def runtime_form(name: str) -> tuple[int, dict[str, Any], list[int]]:
    """The runtime's admin change form as it stands, and its slot ids."""
    from pools.models import Runtime
    from tests.conftest import RUNTIME_FORM_FIELDS

    runtime = Runtime.objects.get(name=name)
    form = {f: getattr(runtime, f) for f in RUNTIME_FORM_FIELDS} | {"enabled": "on"}
    if runtime.app_runtime:  # a checkbox: absent means off
        form["app_runtime"] = "on"
    return runtime.pk, form, list(runtime.slots.values_list("pk", flat=True))


def stack_for(args: argparse.Namespace, database_url: str | None,
              redis_url: str | None) -> LiveStack:
    stack = LiveStack(
        instance=f"{args.instance}-{args.database}", port_base=args.port_base, sizes=SIZES,
        web_workers=4 if redis_url else 3, cluster_processes=2 if redis_url else 1,
        extra_env={"PAAS_USER_QUOTA": str(QUOTA), "PAAS_ACCESS_TOKEN_MINUTES": "600",
                   "PAAS_Q_TIMEOUT": "60", "PAAS_Q_RETRY": "75",
                   # On Redis a task lost with a killed cluster waits for the pass to
                   # retry its slot after the timeout + 30 s: shorter, to fit the settle.
                   **({"PAAS_REDIS_URL": redis_url, "PAAS_Q_TIMEOUT": "45"}
                      if redis_url else {})},
    )
    stack.env.pop("PAAS_DATABASE_URL", None)
    if database_url:
        stack.env["PAAS_DATABASE_URL"] = database_url
    return stack


def django_for(stack: LiveStack) -> None:
    """This process reads the stack's database (and content store) through Django."""
    import django

    os.environ.pop("PAAS_DATABASE_URL", None)
    os.environ.update(stack.env)
    django.setup()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    print(f"SOAK seed={args.seed} database={args.database} seconds={args.seconds:.0f} "
          f"(rerun with PAAS_SOAK_SEED={args.seed})", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # clean up on TERM
    with ExitStack() as cleanup:
        postgres = args.database.startswith("postgres")
        url = cleanup.enter_context(throwaway_postgres()) if postgres else None
        redis = cleanup.enter_context(throwaway_redis()) if "redis" in args.database else None
        stack = stack_for(args, url, redis)
        django_for(stack)
        from pools.services import ensure_network

        # Migrated first: build-images asks each pool to converge (the image roll).
        stack.manage("migrate", "--noinput", "-v0")
        stack.manage("pool", "build-images")  # a no-op when the images are up to date
        ensure_network()  # once, before `pool init` creates containers in parallel
        began = time.monotonic()
        # The data dir (logs, the report) stays only when the run found violations.
        keep = [True]

        def remove_data_dir() -> None:
            if not keep[0]:
                shutil.rmtree(stack.data_dir, ignore_errors=True)

        cleanup.callback(remove_data_dir)
        stack.own_data_dir = False
        cleanup.enter_context(stack)
        print(f"SOAK stack up in {time.monotonic() - began:.0f} s: {stack.url}, "
              f"data dir {stack.data_dir}", flush=True)
        soak = Soak(args, stack)
        started = time.monotonic()
        try:
            soak.run()
        finally:
            soak.gate.pause(finish=True)
            report = soak.report()
            (stack.data_dir / "soak-report.json").write_text(json.dumps(report, indent=2,
                                                                         default=str))
            print(f"SOAK report: {stack.data_dir / 'soak-report.json'}", flush=True)
        print(soak.summary(args.seconds / 60), flush=True)
        print(f"(whole run {time.monotonic() - started:.0f} s)", flush=True)
        keep[0] = bool(soak.tally.violations)
        return 1 if soak.tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())

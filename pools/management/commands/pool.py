"""``python manage.py pool …``: the operators' command line. Thin: parse, call one
service, report. Errors are one line and a non-zero exit."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pools import services
from pools.audit import Source, audit_record, command_actor
from pools.engine import get_engine
from pools.errors import PaasError
from pools.models import PoolContainer, Runtime


class Command(BaseCommand):
    help = "Manage the container pools (status, init, add, set-size, reinit, release, ...)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="pool counts per runtime")
        status.add_argument("--json", action="store_true")
        init = sub.add_parser("init", help="fill every pool (or one) to its size")
        init.add_argument("runtime", nargs="?")
        add = sub.add_parser("add", help="add N containers to a pool")
        add.add_argument("runtime")
        add.add_argument("count", type=int)
        size = sub.add_parser("set-size", help="set a pool's size (shrinks idle slots only)")
        size.add_argument("runtime")
        size.add_argument("size", type=int)
        policy = sub.add_parser("set-policy", help="set a pool's scaling policy")
        policy.add_argument("runtime")
        policy.add_argument("--min-idle", type=int, help="keep at least N idle")
        policy.add_argument("--max-total", help="never more than N containers ('auto': as "
                                                "many as ports and host memory allow)")
        policy.add_argument("--idle-ttl", type=int, help="seconds before an extra idle "
                                                         "container is removed")
        policy.add_argument("--step", type=int, help="containers built at once")
        reinit = sub.add_parser("reinit", help="recreate every container (or one runtime's)")
        reinit.add_argument("runtime", nargs="?")
        release = sub.add_parser("release", help="release a slot or all of a user's")
        who = release.add_mutually_exclusive_group(required=True)
        who.add_argument("--user")
        who.add_argument("--slot", type=int)
        sub.add_parser("reconcile", help="one reconcile pass now")
        sub.add_parser("check", help="check the slot invariants (exit 1 when violated)")
        sub.add_parser("prune", help="delete history older than PAAS_HISTORY_DAYS")
        sub.add_parser("watch", help="follow Docker events and queue recoveries")
        sub.add_parser("cluster", help="the task cluster with the watcher as its child "
                                       "(how the platform runs them)")
        sub.add_parser("schedules", help="install the periodic tasks")
        build = sub.add_parser("build-images", help="build the runtime images")
        build.add_argument("--offline", action="store_true",
                           help="build the base with debootstrap instead of pulling")
        build.add_argument("runtimes", nargs="*")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        handler = getattr(self, "do_" + action.replace("-", "_"))
        try:
            handler(**options)
        except (PaasError, CommandError) as exc:
            _audit(action, options, f"error: {exc}")
            if isinstance(exc, CommandError):
                raise
            raise CommandError(str(exc)) from exc
        _audit(action, options, "ok")

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    # --- actions -------------------------------------------------------------
    def do_status(self, *, json: bool = False, **_: Any) -> None:
        from deployments.selectors import pools_demand

        rows = pools_demand()
        if json:
            self.say(_dumps(rows))
            return
        self.say(f"{'runtime':<8} {'idle':>5} {'assigned':>8} {'failed':>6} {'busy':>5} "
                 f"{'total':>5} {'size':>5} {'claims/min':>10} {'waiting':>7}  ports  policy")
        for r in rows:
            flag = "" if r["enabled"] else "  (disabled)"
            self.say(f"{r['runtime']:<8} {r['idle']:>5} {r['assigned']:>8} {r['failed']:>6} "
                     f"{r['busy']:>5} {r['total']:>5} {r['pool_size']:>5} "
                     f"{r['claims_per_minute']:>10} {r['waiting']:>7}  {r['ports']}  "
                     f"{_policy(r['policy'])}{flag}")
        if rows:
            self.say(f"(claims/min: launches over the last {rows[0]['window_minutes']} minutes)")
        for r in rows:
            for p in r["problems"]:
                self.say(f"  slot {p['slot']} ({r['runtime']}:{p['port']}) {p['status']}: "
                         f"{p['error']}")
        for r in rows:
            for d in r["deployments"]:
                self.say(f"  {r['runtime']}:{d['port']} {d['user']} expires "
                         f"{_expiry(d['expires_at'], d['reason'])}")

    def do_init(self, *, runtime: str | None = None, **_: Any) -> None:
        _require_engine()
        created = services.pool_init(runtime_name=runtime, wait=True, progress=self.say)
        self.say("created " + ", ".join(f"{k}={v}" for k, v in created.items()))
        self.do_status()

    def do_add(self, *, runtime: str, count: int, **_: Any) -> None:
        _require_engine()
        slots = services.pool_add(runtime_name=runtime, count=count, wait=True, progress=self.say)
        self.say(f"added {len(slots)} {runtime} container(s) on ports "
                 + ", ".join(str(s.port) for s in slots))

    def do_set_size(self, *, runtime: str, size: int, **_: Any) -> None:
        if size < 0:
            raise CommandError("size must be 0 or more")
        _require_engine()
        result = services.pool_set_size(runtime_name=runtime, size=size, wait=True)
        note = f"; {result['short']} assigned slot(s) kept" if result["short"] else ""
        self.say(f"{runtime}: size {size}, added {result['added']}, "
                 f"removed {result['removed']} idle{note}")

    def do_set_policy(self, *, runtime: str, min_idle: int | None = None,
                      max_total: str | None = None, idle_ttl: int | None = None,
                      step: int | None = None, **_: Any) -> None:
        from pools.policy import runtime_set_policy

        auto = max_total == "auto"
        if max_total is not None and not auto and not max_total.isdigit():
            raise CommandError(f"--max-total {max_total!r}: give a number or 'auto'")
        saved = runtime_set_policy(
            runtime_name=runtime, min_idle=min_idle, idle_ttl=idle_ttl, step=step,
            max_total=None if auto or max_total is None else int(max_total),
            clear_max_total=auto)
        self.say(f"{saved.name}: min idle {saved.min_idle}, max total "
                 f"{saved.max_total if saved.max_total is not None else 'auto'}, idle ttl "
                 f"{saved.idle_ttl}s, step {saved.step}")

    def do_reinit(self, *, runtime: str | None = None, **_: Any) -> None:
        _require_engine()
        slots = PoolContainer.objects.select_related("runtime")
        if runtime:
            slots = slots.filter(runtime=services.runtime_get(name=runtime))
        # The command builds the slots itself (no task queued), so one builder each.
        done = [slot for slot in slots if services.slot_reinitialize(slot=slot, queue=False)]
        self.say(f"reinitializing {len(done)} slot(s)")
        services.slot_rebuild_now(slots=done, progress=self.say)

    def do_release(self, *, user: str | None = None, slot: int | None = None, **_: Any) -> None:
        from deployments import services as deployment_services

        if user is not None:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user '{user}'")
            count = deployment_services.deployments_release_for_user(user=owner)
            self.say(f"released {count} container(s) of {user}")
            return
        target = PoolContainer.objects.filter(pk=slot).first()
        if target is None:
            raise CommandError(f"no slot {slot}")
        if deployment_services.slot_release_by_operator(slot=target):
            self.say(f"released slot {slot} (port {target.port})")
        else:
            self.say(f"slot {slot} is not assigned; nothing to release")

    def do_build_images(self, *, offline: bool = False, runtimes: list[str] | None = None,
                        **_: Any) -> None:
        from pools.imagebuild import RUNTIMES, build_images, images_to_nodes

        for name in runtimes or []:
            if name not in RUNTIMES:
                raise CommandError(f"unknown runtime '{name}'; choose from {', '.join(RUNTIMES)}")
        _require_engine()
        tags = build_images(get_engine(), offline=offline, runtimes=runtimes or None,
                            progress=self.say)
        images_to_nodes(get_engine(), tags=list(tags.values()), progress=self.say)
        for name, tag in tags.items():
            self.say(f"{name}: {tag}")
        # Pools whose image changed roll it into their idle slots, a step at a time.
        for name in Runtime.objects.filter(name__in=tags, enabled=True, slots__isnull=False) \
                .distinct().values_list("name", flat=True):
            services.pool_converge_request(runtime_name=name)

    def do_reconcile(self, **_: Any) -> None:
        from pools import monitor

        # An operator asked for a pass: wait for a running one rather than skip.
        result = monitor.reconcile_pass(trigger="command", wait=services.COMMAND_LEASE_WAIT)
        self.say(_dumps(result))
        if result.get("skipped"):
            raise CommandError("another reconcile pass is still running; try again shortly")
        if not result.get("ok"):
            raise CommandError(str(result.get("error", "reconcile pass failed")))

    def do_check(self, **_: Any) -> None:
        from pools.invariants import invariants_check

        problems = invariants_check()
        for line in problems:
            self.say(line)
        if problems:
            raise CommandError(f"{len(problems)} invariant(s) violated")
        self.say("all slot invariants hold")

    def do_prune(self, **_: Any) -> None:
        from pools.housekeeping import history_prune

        removed = history_prune()
        self.say("pruned " + ", ".join(f"{k}={v}" for k, v in removed.items()))

    def do_watch(self, **_: Any) -> None:
        from pools import monitor

        monitor.watch(say=self.say)

    def do_cluster(self, **_: Any) -> None:
        from pools.cluster import cluster_run

        if not cluster_run(say=self.say):
            raise CommandError("the task cluster's sentinel died; stopped the watcher too")

    def do_schedules(self, **_: Any) -> None:
        from deployments.lifetimes import cull_schedule_install
        from pools import monitor

        self.say(cull_schedule_install())
        for line in monitor.schedules_install():
            self.say(line)


READ_ONLY = {"status", "watch", "cluster", "check"}  # these change nothing: no audit row


def _audit(action: str, options: dict[str, Any], result: str) -> None:
    if action in READ_ONLY:
        return
    wanted = ("runtime", "count", "size", "user", "slot", "offline", "runtimes")
    detail = " ".join(f"{key}={options[key]}" for key in wanted if options.get(key))
    audit_record(actor=command_actor(), action=f"pool.{action}", source=Source.COMMAND,
                 users=[options["user"]] if options.get("user") else [],
                 result=result, detail=detail)


def _require_engine() -> None:
    get_engine().ping()


def _policy(policy: dict[str, Any]) -> str:
    top = "auto" if policy["max_total"] is None else policy["max_total"]
    return (f"min idle {policy['min_idle']}, max total {top}, idle ttl "
            f"{policy['idle_ttl']}s, step {policy['step']}")


def _expiry(expires_at: datetime | None, reason: str) -> str:
    if expires_at is None:
        return "never"
    left = int((expires_at - timezone.now()).total_seconds())
    when = f"in {left // 60} min {left % 60} s" if left > 0 else "now (due for the cull)"
    return f"{expires_at:%Y-%m-%d %H:%M:%S %Z}, {when} ({reason})"


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)

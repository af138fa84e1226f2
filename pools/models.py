"""Runtimes and their pool slots. One ``PoolContainer`` row per slot; the container
behind it is replaced (with a new generation) on release, recovery and reinitialize."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Runtime(models.Model):
    name = models.SlugField(max_length=32, unique=True)
    display_name = models.CharField(max_length=64, blank=True)
    image = models.CharField(
        max_length=200, blank=True,
        help_text="Image tag to run; blank means the image built from this repository.",
    )
    internal_port = models.PositiveIntegerField()
    content_root = models.CharField(max_length=200)
    port_min = models.PositiveIntegerField()
    port_max = models.PositiveIntegerField()
    pool_size = models.PositiveIntegerField(
        default=1, verbose_name="min idle",
        help_text="Keep at least this many idle containers (the pool's warm size).",
    )
    # --- scaling policy (validated by pools.policy) ---
    max_total = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Never more containers than this. Blank: as many as the port range and "
                  "the host memory budget allow.",
    )
    idle_ttl = models.PositiveIntegerField(
        default=600, help_text="Seconds an idle container above min idle may stay unused "
                               "before it is removed.",
    )
    step = models.PositiveIntegerField(
        default=4, help_text="How many containers to build at once when the pool grows.",
    )
    mem_estimate_mb = models.PositiveIntegerField(
        default=64, help_text="Typical memory one container of this runtime really uses "
                              "(for the host memory budget; not its limit).",
    )
    max_share = models.FloatField(
        default=0.5, help_text="The largest fraction of the pool's maximum size one user "
                               "may hold (e.g. 0.5); 1 = no limit beyond the quota.",
    )
    # --- lifetimes (off while blank) ---
    max_age = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Seconds after launch a deployment is released. Blank: no limit.",
    )
    idle_timeout = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Seconds without requests or user actions after which a deployment is "
                  "released. Blank: no limit.",
    )
    lifetime_extension = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Seconds a user may add, once, before their deployment expires. "
                  "Blank: no extension.",
    )
    mem_limit_mb = models.PositiveIntegerField(default=256)
    cpus = models.FloatField(default=0.5)
    pids_limit = models.PositiveIntegerField(default=256)
    cap_add = models.CharField(
        max_length=200, blank=True, help_text="Comma-separated capabilities beyond none.",
    )
    app_runtime = models.BooleanField(
        default=False, help_text="Runs the user's app (python/node) rather than serving files.",
    )
    enabled = models.BooleanField(default=True)
    # Bumped by a database trigger (migration 0011) on every change of the row, whoever
    # makes it: save(), QuerySet.update(), another process or host. A launch keeps the
    # row per process and checks this in its own transaction (pools.services.runtime_cached).
    revision = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["port_min"]

    def __str__(self) -> str:
        return self.name

    @property
    def min_idle(self) -> int:
        return self.pool_size

    def clean(self) -> None:
        from pools.policy import policy_check

        policy_check(runtime=self)

    @property
    def capabilities(self) -> list[str]:
        return [cap.strip().upper() for cap in self.cap_add.split(",") if cap.strip()]


class SlotStatus(models.TextChoices):
    PROVISIONING = "provisioning"
    IDLE = "idle"
    ASSIGNED = "assigned"
    RECYCLING = "recycling"
    RECOVERING = "recovering"
    FAILED = "failed"


class PoolContainer(models.Model):
    runtime = models.ForeignKey(Runtime, on_delete=models.PROTECT, related_name="slots")
    port = models.PositiveIntegerField(unique=True)
    container_id = models.CharField(max_length=80, blank=True)
    generation = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=SlotStatus.choices, default=SlotStatus.PROVISIONING,
        db_index=True,
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="pool_containers",
    )
    created_at = models.DateTimeField(default=timezone.now)
    assigned_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    built_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current container was (re)built.",
    )
    healthy = models.BooleanField(null=True, blank=True)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failures = models.PositiveIntegerField(
        default=0, help_text="Consecutive failed replacements; reset on success.",
    )
    retry_after = models.DateTimeField(null=True, blank=True)
    image = models.CharField(
        max_length=200, blank=True,
        help_text="The image the current container was built from (blank: built before "
                  "this was recorded). Idle slots on an older image are rebuilt by the "
                  "pool converge, a step at a time.",
    )
    build_generation = models.PositiveIntegerField(
        default=0, help_text="The generation whose container build has started (one builder each).",
    )
    build_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When that build started; a task redelivered after "
        "its worker died takes it over once this is older than the task timeout.",
    )
    content_version = models.PositiveBigIntegerField(
        default=0, help_text="Bumped on every change of the slot's content store.",
    )
    pushed_version = models.PositiveBigIntegerField(
        default=0, help_text="The content version the current container serves.",
    )
    # Hostnames (DNS labels under PAAS_APPS_DOMAIN). The slug is fresh and random for each
    # new user and is routed before the slot turns idle; the alias is the user's own name.
    # Both end with the assignment. Caddy's routes are derived from these fields.
    slug = models.CharField(max_length=63, blank=True, default="")
    alias = models.CharField(max_length=63, blank=True, default="")
    suspended = models.BooleanField(
        default=False, help_text="The hostname shows a notice page instead of the app.",
    )
    routed_hosts = models.CharField(
        max_length=200, blank=True, default="",
        help_text="The slot's hostnames Caddy served at the last successful route sync.",
    )
    # On a swarm, the node that runs the slot's task: its port answers on ``node_addr``.
    # Blank on a single engine (the control host).
    node_id = models.CharField(max_length=64, blank=True)
    node_addr = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["runtime__port_min", "port"]
        indexes = [models.Index(fields=["runtime", "status"])]
        constraints = [
            models.UniqueConstraint(fields=["slug"], condition=~models.Q(slug=""),
                                    name="unique_slot_slug"),
            models.UniqueConstraint(fields=["alias"], condition=~models.Q(alias=""),
                                    name="unique_slot_alias"),
        ]

    def __str__(self) -> str:
        return f"{self.runtime.name}:{self.port}"

    @property
    def container_name(self) -> str:
        return (
            f"paas-{settings.PAAS_INSTANCE}-{self.runtime.name}-{self.port}-g{self.generation}"
        )


class Recovery(models.Model):
    """One replacement of a failed slot's container (self-healing history)."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SUPERSEDED = "superseded"

    # History outlives the slot (a shrunk pool deletes idle slots): runtime and port are
    # copied onto the row.
    slot = models.ForeignKey(PoolContainer, null=True, on_delete=models.SET_NULL,
                             related_name="recoveries")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    runtime_name = models.CharField(max_length=32)
    port = models.PositiveIntegerField()
    generation = models.PositiveIntegerField()
    reason = models.CharField(max_length=200)
    trigger = models.CharField(max_length=32, default="reconcile")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.RUNNING,
    )
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "recoveries"
        constraints = [
            # A retried task finds its own row instead of writing a second one.
            models.UniqueConstraint(fields=["slot", "generation"], name="one_recovery_per_generation"),
        ]

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class MonitorPass(models.Model):
    """One reconcile pass: when, whether Docker answered, and what it did."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    summary = models.JSONField(default=dict)

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "monitor passes"


class Lease(models.Model):
    """A named lease across processes (one reconcile pass at a time). A holder that dies
    blocks nobody for longer than the lease's expiry."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.holder or 'free'} until {self.expires_at:%H:%M:%S})"


class AuditEntry(models.Model):
    """One operator action (admin, command) or automatic one (recovery, giving up on a
    slot): who or what did it, to which slots and users, and with what result."""

    class Source(models.TextChoices):
        ADMIN = "admin"
        COMMAND = "command"
        API = "api"
        SYSTEM = "system"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    # Kept as text too: the user may be deleted later; "system:watch", "cli:root".
    actor_name = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=64, db_index=True)
    slots = models.JSONField(default=list, blank=True, help_text="Slots, as runtime:port.")
    users = models.JSONField(default=list, blank=True, help_text="Usernames concerned.")
    result = models.CharField(max_length=300, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action}"


class OccupancySample(models.Model):
    """A runtime's slot counts at one moment (taken by each reconcile pass), for the
    admin's occupancy chart over the last hours."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    runtime_name = models.CharField(max_length=32)
    idle = models.PositiveIntegerField()
    assigned = models.PositiveIntegerField()
    busy = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()

    class Meta:
        ordering = ["at"]

    @property
    def total(self) -> int:
        return self.idle + self.assigned + self.busy + self.failed

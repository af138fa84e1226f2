"""The operators' control panel for pools. Actions loop over the selection, call one
service each, and say what they did and what they skipped."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from pools import hostnames, services
from pools.audit import Source, audit_record
from pools.errors import PaasError
from pools.models import (
    AuditEntry,
    Lease,
    MonitorPass,
    PoolContainer,
    Recovery,
    Runtime,
    SlotStatus,
)
from pools.selectors import claimable_q
from pools.states import IN_USE

S = SlotStatus


def _report(modeladmin: admin.ModelAdmin, request: HttpRequest, done: list[str],
            skipped: list[str], verb: str) -> None:
    audit_record(actor=request.user, action=verb, source=Source.ADMIN, slots=done,
                 result=f"{len(done)} done, {len(skipped)} skipped", detail="; ".join(skipped))
    if done:
        modeladmin.message_user(request, f"{verb}: {', '.join(done)}", messages.SUCCESS)
    if skipped:
        modeladmin.message_user(request, f"skipped: {'; '.join(skipped)}", messages.WARNING)
    if not done and not skipped:
        modeladmin.message_user(request, "nothing selected", messages.INFO)


@admin.register(Runtime)
class RuntimeAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "pool_size", "idle", "assigned", "failed", "total",
                    "ports", "image_tag"]
    list_editable = ["pool_size", "enabled"]
    actions = ["reinitialize_pool"]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "enabled", "pool_size"]}),
        ("Scaling policy", {"fields": ["max_total", "idle_ttl", "step", "mem_estimate_mb",
                                       "max_share"]}),
        ("Lifetimes (off while blank)", {"fields": ["max_age", "idle_timeout",
                                                    "lifetime_extension"]}),
        ("Ports", {"fields": ["port_min", "port_max", "internal_port"]}),
        ("Container", {"fields": ["image", "content_root", "app_runtime", "mem_limit_mb",
                                  "cpus", "pids_limit", "cap_add"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Runtime]:
        return super().get_queryset(request).annotate(
            n_idle=Count("slots", filter=claimable_q("slots__")),
            n_assigned=Count("slots", filter=Q(slots__status__in=IN_USE)),
            n_failed=Count("slots", filter=Q(slots__status=S.FAILED)),
            n_total=Count("slots"),
        )

    @admin.display(ordering="n_idle")
    def idle(self, obj: Any) -> int:
        return int(obj.n_idle)

    @admin.display(ordering="n_assigned")
    def assigned(self, obj: Any) -> int:
        return int(obj.n_assigned)

    @admin.display(ordering="n_failed")
    def failed(self, obj: Any) -> int:
        return int(obj.n_failed)

    @admin.display(ordering="n_total")
    def total(self, obj: Any) -> int:
        return int(obj.n_total)

    @admin.display(description="ports")
    def ports(self, obj: Runtime) -> str:
        return f"{obj.port_min}-{obj.port_max}"

    @admin.display(description="image")
    def image_tag(self, obj: Runtime) -> str:
        try:
            return services.runtime_image(obj)
        except Exception:  # an image that cannot be named is shown, not fatal
            return "?"

    def save_model(self, request: HttpRequest, obj: Runtime, form: Any, change: bool) -> None:
        wanted = obj.pool_size
        super().save_model(request, obj, form, change)
        audit_record(actor=request.user, action="runtime.change" if change else "runtime.add",
                     source=Source.ADMIN, detail=f"{obj.name}: {', '.join(form.changed_data)}")
        if not change or "pool_size" in form.changed_data:
            self._resize(request, obj, wanted)

    def _resize(self, request: HttpRequest, runtime: Runtime, size: int) -> None:
        """Only asks for a converge: the pool fills or shrinks (idle slots only) in the
        background, one converge at a time."""
        services.pool_converge_request(runtime_name=runtime.name)
        self.message_user(request, f"{runtime.name}: size {size}; the pool converges to it in "
                                   "the background (only idle slots are removed)",
                          messages.INFO)

    @admin.action(description="Reinitialize pool (recreate every container; assigned keep their files)")
    def reinitialize_pool(self, request: HttpRequest, queryset: QuerySet[Runtime]) -> None:
        done: list[str] = []
        skipped: list[str] = []
        for runtime in queryset:
            for slot in runtime.slots.all():
                ok = services.slot_reinitialize(slot=slot)
                (done if ok else skipped).append(
                    f"{slot}" if ok else f"{slot} (already being rebuilt)")
        _report(self, request, done, skipped, "reinitializing")


class AddContainersForm(forms.Form):
    runtime = forms.ModelChoiceField(queryset=Runtime.objects.all())
    count = forms.IntegerField(min_value=1, max_value=100, initial=1)


@admin.register(PoolContainer)
class PoolContainerAdmin(admin.ModelAdmin):
    list_display = ["__str__", "runtime", "port", "status", "owner", "health", "generation",
                    "age", "url", "hostname", "logs_link"]
    list_filter = ["runtime", "status", ("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=port", "owner__username", "=slug", "=alias"]
    list_select_related = ["runtime", "owner"]
    readonly_fields = ["runtime", "port", "container_id", "generation", "status", "owner",
                       "created_at", "assigned_at", "status_changed_at", "built_at", "healthy",
                       "health_checked_at", "last_error", "failures", "retry_after",
                       "slug", "alias", "suspended", "routed_hosts"]
    actions = ["add_containers", "reinitialize", "release", "suspend_hostname",
               "lift_suspension"]
    change_list_template = "admin/pools/poolcontainer/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # slots come from "add containers", which allocates the port

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # no side door: a pool shrinks through its size (idle slots only)

    @admin.display(description="health")
    def health(self, obj: PoolContainer) -> str:
        if obj.status == S.FAILED or (obj.last_error and obj.retry_after):
            return f"{obj.status}: {obj.last_error}"[:120]
        if obj.healthy is None:
            return "unknown"
        return "ok" if obj.healthy else f"unhealthy: {obj.last_error}"[:120]

    @admin.display(description="age", ordering="created_at")
    def age(self, obj: PoolContainer) -> str:
        return timesince(obj.status_changed_at, timezone.now())

    @admin.display(description="URL")
    def url(self, obj: PoolContainer) -> str:
        host = obj.node_addr or settings.PAAS_PUBLIC_HOST or "localhost"  # swarm: its node
        return format_html('<a href="http://{}:{}/" target="_blank">{}:{}</a>', host, obj.port,
                           obj.node_addr, obj.port)

    @admin.display(description="hostname")
    def hostname(self, obj: PoolContainer) -> str:
        if not obj.slug:
            return ""
        label = f"{obj.slug} ({obj.alias})" if obj.alias else obj.slug
        return f"{label} — suspended" if obj.suspended else label

    @admin.display(description="logs")
    def logs_link(self, obj: PoolContainer) -> str:
        return format_html('<a href="{}">logs</a>',
                           reverse("admin:pools_poolcontainer_logs", args=[obj.pk]))

    def get_urls(self) -> list[Any]:
        own = [path("<int:slot_id>/logs/", self.admin_site.admin_view(self.logs_view),
                    name="pools_poolcontainer_logs"),
               path("add-containers/", self.admin_site.admin_view(self.add_containers_view),
                    name="pools_poolcontainer_add_containers")]
        return own + super().get_urls()

    def logs_view(self, request: HttpRequest, slot_id: int) -> HttpResponse:
        slot = get_object_or_404(PoolContainer.objects.select_related("runtime"), pk=slot_id)
        try:
            text = services.slot_logs(slot=slot, tail=200) or "(no output yet)"
        except PaasError as exc:
            text = f"could not read the logs: {exc.detail}"
        context = {**self.admin_site.each_context(request), "slot": slot, "logs": text,
                   "title": f"Logs of {slot}", "opts": self.model._meta}
        return TemplateResponse(request, "admin/pools/poolcontainer/logs.html", context)

    @admin.action(description="Add containers…")
    def add_containers(self, request: HttpRequest,
                       queryset: QuerySet[PoolContainer]) -> HttpResponse:
        """Go to the page that asks how many, for the selection's runtime."""
        first = queryset.first()
        query = f"?runtime={first.runtime_id}" if first else ""
        return HttpResponseRedirect(reverse("admin:pools_poolcontainer_add_containers") + query)

    def add_containers_view(self, request: HttpRequest) -> HttpResponse:
        form = AddContainersForm(request.POST or None,
                                 initial={"runtime": request.GET.get("runtime")})
        if form.is_valid():
            runtime, count = form.cleaned_data["runtime"], form.cleaned_data["count"]
            try:
                services.pool_add(runtime_name=runtime.name, count=count)
            except PaasError as exc:
                audit_record(actor=request.user, action="pool.add", source=Source.ADMIN,
                             result=f"error: {exc.detail}", detail=f"{runtime.name} x{count}")
                self.message_user(request, f"{runtime.name}: {exc.detail}", messages.ERROR)
            else:
                audit_record(actor=request.user, action="pool.add", source=Source.ADMIN,
                             detail=f"{runtime.name} x{count}")
                self.message_user(request, f"adding {count} {runtime.name} container(s); "
                                  "they are built in the background", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:pools_poolcontainer_changelist"))
        context = {**self.admin_site.each_context(request), "form": form,
                   "title": "Add containers", "opts": self.model._meta}
        return render(request, "admin/pools/poolcontainer/add_containers.html", context)

    @admin.action(description="Reinitialize (recreate; assigned keep their files)")
    def reinitialize(self, request: HttpRequest, queryset: QuerySet[PoolContainer]) -> None:
        done: list[str] = []
        skipped: list[str] = []
        for slot in queryset:
            if services.slot_reinitialize(slot=slot):
                done.append(str(slot))
            else:
                skipped.append(f"{slot} (already being rebuilt)")
        _report(self, request, done, skipped, "reinitializing")

    @admin.action(description="Release (end the user's deployment, recycle)")
    def release(self, request: HttpRequest, queryset: QuerySet[PoolContainer]) -> None:
        from deployments.services import slot_release_by_operator

        done: list[str] = []
        skipped: list[str] = []
        for slot in queryset:
            owner = slot.owner
            if owner is not None and slot_release_by_operator(slot=slot):
                done.append(f"{slot} (was {owner})")
            else:
                skipped.append(f"{slot} (not assigned)")
        _report(self, request, done, skipped, "released")


    @admin.action(description="Suspend hostname (a notice page instead of the app)")
    def suspend_hostname(self, request: HttpRequest,
                         queryset: QuerySet[PoolContainer]) -> None:
        self._suspend(request, queryset, suspended=True)

    @admin.action(description="Lift hostname suspension")
    def lift_suspension(self, request: HttpRequest, queryset: QuerySet[PoolContainer]) -> None:
        self._suspend(request, queryset, suspended=False)

    def _suspend(self, request: HttpRequest, queryset: QuerySet[PoolContainer], *,
                 suspended: bool) -> None:
        done: list[str] = []
        skipped: list[str] = []
        for slot in queryset:
            if hostnames.slot_suspend(slot=slot, suspended=suspended):
                done.append(f"{slot} ({slot.slug})")
            else:
                skipped.append(f"{slot} (not assigned, or already so)")
        _report(self, request, done, skipped, "suspended" if suspended else "lifted")


@admin.register(Recovery)
class RecoveryAdmin(admin.ModelAdmin):
    list_display = ["started_at", "runtime_name", "port", "owner", "reason", "trigger",
                    "outcome", "duration"]
    list_filter = ["outcome", "trigger", "runtime_name"]
    search_fields = ["=port", "owner__username", "reason"]

    @admin.display(description="duration")
    def duration(self, obj: Recovery) -> str:
        seconds = obj.duration_seconds
        return "" if seconds is None else f"{seconds:.1f} s"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MonitorPass)
class MonitorPassAdmin(admin.ModelAdmin):
    list_display = ["started_at", "finished_at", "ok", "error", "summary"]
    list_filter = ["ok"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    """Who holds the reconcile/converge lease, and until when (read-only)."""

    list_display = ["name", "holder", "expires_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the trail is written by the actions themselves."""

    list_display = ["at", "actor_name", "source", "action", "targets", "result"]
    list_filter = ["source", "action", "actor_name"]
    search_fields = ["actor_name", "action", "slots", "users", "result", "detail"]
    date_hierarchy = "at"

    @admin.display(description="slots / users")
    def targets(self, obj: AuditEntry) -> str:
        return ", ".join([*obj.slots, *obj.users])[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

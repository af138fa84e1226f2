"""The User admin: per-user quota, what each user holds, and "release all for user".
Deactivating or deleting a user releases their containers (see deployments.signals)."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from accounts.models import Admission, InviteCode, Quota, SignupPolicy
from accounts.services import user_approve
from pools.audit import Source, audit_record


class QuotaInline(admin.StackedInline):
    model = Quota
    can_delete = False
    extra = 1
    max_num = 1
    verbose_name_plural = "deployment quota and lifetimes"


class AdmissionInline(admin.StackedInline):
    model = Admission
    fk_name = "user"
    can_delete = False
    extra = 0
    max_num = 1
    fields = ["invite", "approved_at", "approved_by"]
    readonly_fields = ["invite", "approved_by"]
    verbose_name_plural = "sign-up (invite code, approval)"


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PaasUserAdmin(UserAdmin):
    inlines = [QuotaInline, AdmissionInline]
    list_display = ["username", "email", "is_active", "is_staff", "admitted", "holds",
                    "last_login", "date_joined"]
    list_filter = [*UserAdmin.list_filter, "admission__invite"]
    actions = ["release_all", "approve"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(
            n_held=Count("deployments", filter=Q(deployments__status="active")))

    @admin.display(description="active deployments", ordering="n_held")
    def holds(self, obj: Any) -> int:
        return int(obj.n_held)

    @admin.display(description="may launch", boolean=True)
    def admitted(self, obj: Any) -> bool:
        admission = getattr(obj, "admission", None)
        return obj.is_staff or admission is None or admission.approved_at is not None

    @admin.action(description="Approve the selected users (they may launch)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        approved = [user.username for user in queryset
                    if user_approve(user=user, by=request.user)]  # type: ignore[arg-type]
        skipped = queryset.count() - len(approved)
        if approved:
            self.message_user(request, f"approved: {', '.join(approved)}", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} already approved", messages.INFO)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data:  # deactivating releases (signal)
            audit_record(actor=request.user, source=Source.ADMIN, users=[obj.username],
                         action="user.activate" if obj.is_active else "user.deactivate")

    @admin.action(description="Release all containers of the selected users")
    def release_all(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from deployments.services import deployments_release_for_user

        for user in queryset:
            count = deployments_release_for_user(user=user)
            audit_record(actor=request.user, action="user.release_all", source=Source.ADMIN,
                         users=[user.username], result=f"released {count}")
            level = messages.SUCCESS if count else messages.INFO
            self.message_user(request, f"{user.username}: released {count} container(s)", level)


@admin.register(SignupPolicy)
class SignupPolicyAdmin(admin.ModelAdmin):
    """One row (the sign-up mode); it exists once anyone has looked at it."""

    list_display = ["__str__", "mode"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SignupPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        from accounts.selectors import signup_policy

        signup_policy()  # the row exists from the first visit on, with the env's mode
        return super().changelist_view(request, extra_context)


@admin.register(InviteCode)
class InviteCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "note", "uses", "max_uses", "expires_at", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["code", "note"]
    readonly_fields = ["uses", "created_at"]

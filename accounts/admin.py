"""The User admin: per-user quota, what each user holds, and "release all for user".
Deactivating or deleting a user releases their containers (see deployments.signals)."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from accounts.models import Quota


class QuotaInline(admin.StackedInline):
    model = Quota
    can_delete = False
    extra = 1
    max_num = 1
    verbose_name_plural = "deployment quota"


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PaasUserAdmin(UserAdmin):
    inlines = [QuotaInline]
    list_display = ["username", "email", "is_active", "is_staff", "holds", "last_login",
                    "date_joined"]
    actions = ["release_all"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(
            n_held=Count("deployments", filter=Q(deployments__status="active")))

    @admin.display(description="active deployments", ordering="n_held")
    def holds(self, obj: Any) -> int:
        return int(obj.n_held)

    @admin.action(description="Release all containers of the selected users")
    def release_all(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from deployments.services import deployments_release_for_user

        for user in queryset:
            count = deployments_release_for_user(user=user)
            level = messages.SUCCESS if count else messages.INFO
            self.message_user(request, f"{user.username}: released {count} container(s)", level)

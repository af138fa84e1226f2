"""Deployments in the admin: read-only history of who used which slot when."""

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from deployments.lifetimes import deployment_expires_at
from deployments.models import Deployment


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "runtime_name", "port", "status", "state", "created_at",
                    "expires", "released_at", "ended_reason"]
    list_filter = ["status", "runtime_name", "ended_reason"]
    search_fields = ["user__username", "=port"]
    list_select_related = ["user", "slot"]
    date_hierarchy = "created_at"

    @admin.display(description="expires")
    def expires(self, obj: Deployment) -> datetime | None:
        """When its lifetime releases it (blank: never, or ended)."""
        return deployment_expires_at(deployment=obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

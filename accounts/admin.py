"""The User admin with the per-user quota inline."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

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

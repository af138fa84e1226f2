from django.urls import path

from pools import api

urlpatterns = [
    path("audit/", api.AuditView.as_view(), name="api-audit"),
]

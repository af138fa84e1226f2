"""URLs: the admin, the REST API with its schema and docs, and the health check.
The web pages (``/``, ``/login/``, ``/dashboard/``…) are added by their own apps."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from deployments.api import HealthView
from pools.views import caddy_ask, metrics_view

admin.autodiscover()  # SimpleAdminConfig in settings: the web's processes only

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.api_urls")),
    path("api/", include("deployments.api_urls")),
    path("api/", include("pools.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file: the page works under our CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"),
         name="api-docs"),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("caddy/ask", caddy_ask, name="caddy-ask"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("accounts.page_urls")),
    path("", include("deployments.page_urls")),
]

# Errors Django answers itself (no view ran, or one failed) keep the API's envelope.
handler400 = "paas_project.api_errors.bad_request"
handler404 = "paas_project.api_errors.not_found"
handler500 = "paas_project.api_errors.server_error"

"""The user's pages (the API's URLs are in ``deployments.api_urls``)."""

from django.urls import path

from deployments import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("deployments/launch/", views.deployment_launch, name="deployment-launch"),
    path("deployments/<int:pk>/", views.deployment_page, name="deployment"),
    path("deployments/<int:pk>/upload/", views.deployment_upload, name="deployment-upload"),
    path("deployments/<int:pk>/files/delete/", views.deployment_file_delete,
         name="deployment-file-delete"),
    path("deployments/<int:pk>/alias/", views.deployment_alias, name="deployment-alias"),
    path("deployments/<int:pk>/restart/", views.deployment_restart, name="deployment-restart"),
    path("deployments/<int:pk>/extend/", views.deployment_extend, name="deployment-extend"),
    path("deployments/<int:pk>/release/", views.deployment_release, name="deployment-release"),
]

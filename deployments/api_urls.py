from django.urls import path

from deployments import api

urlpatterns = [
    path("runtimes/", api.RuntimesView.as_view(), name="api-runtimes"),
    path("deployments/", api.DeploymentListView.as_view(), name="api-deployments"),
    path("deployments/<int:pk>/", api.DeploymentDetailView.as_view(), name="api-deployment"),
    path("deployments/<int:pk>/files/", api.FilesView.as_view(), name="api-files"),
    # The file's path may contain slashes (folders).
    path("deployments/<int:pk>/files/<path:path>", api.FileDeleteView.as_view(),
         name="api-file"),
    path("deployments/<int:pk>/logs/", api.LogsView.as_view(), name="api-logs"),
    path("deployments/<int:pk>/restart/", api.RestartView.as_view(), name="api-restart"),
    path("deployments/<int:pk>/extend/", api.ExtendView.as_view(), name="api-extend"),
    path("pools/", api.PoolsView.as_view(), name="api-pools"),
]

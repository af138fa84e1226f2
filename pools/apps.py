import sys

from django.apps import AppConfig


class PoolsConfig(AppConfig):
    name = "pools"
    verbose_name = "Container pools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pools import signals  # noqa: F401  (installs schedules after migrate)

        # The cluster's processes are forked from this one once the command runs (django-q2
        # gives no earlier hook in the parent): share what they all load.
        if sys.argv[1:2] == ["qcluster"]:
            from pools.preload import cluster_preload

            cluster_preload()

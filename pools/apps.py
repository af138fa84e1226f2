from django.apps import AppConfig


class PoolsConfig(AppConfig):
    name = "pools"
    verbose_name = "Container pools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pools import signals  # noqa: F401  (installs schedules after migrate)

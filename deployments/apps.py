from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from deployments import signals  # noqa: F401  (a deactivated user's containers)
        from deployments.services import pending_count, serve_waiting_for
        from pools.policy import demand_register, idle_listen

        demand_register(pending_count)  # elastic pools build for waiting launches too
        idle_listen(serve_waiting_for)  # a slot turned idle: the oldest waiting takes it

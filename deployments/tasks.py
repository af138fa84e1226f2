"""django-q2 task entry points of deployments: call one service each."""

from deployments.lifetimes import deployments_cull
from deployments.services import deployments_serve_all_waiting


def cull() -> dict[str, int]:
    """Every minute: release expired deployments, serve (or give up on) waiting
    launches whose poll stopped."""
    return {**deployments_cull(), "served": deployments_serve_all_waiting()}

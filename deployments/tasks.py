"""django-q2 task entry points of deployments: call one service each."""

from deployments.lifetimes import deployments_cull


def cull() -> dict[str, int]:
    return deployments_cull()

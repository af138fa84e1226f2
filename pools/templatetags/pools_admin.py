"""The admin index's pool overview: per runtime counts and the last monitor pass."""

from typing import Any

from django import template

from pools.models import MonitorPass
from pools.occupancy import HEIGHT, WIDTH, occupancy_charts
from pools.services import pool_counts

register = template.Library()


@register.inclusion_tag("admin/pools/overview.html")
def pools_overview() -> dict[str, Any]:
    return {"rows": pool_counts(), "last_pass": MonitorPass.objects.first(),
            "charts": occupancy_charts(hours=6), "width": WIDTH, "height": HEIGHT}

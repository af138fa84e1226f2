"""The admin index's pool overview: per runtime counts, demand, the scaling policy and
when each assigned deployment expires, the last monitor pass and occupancy charts."""

from typing import Any

from django import template

from deployments.selectors import pools_demand
from pools.models import MonitorPass
from pools.occupancy import HEIGHT, WIDTH, occupancy_charts

register = template.Library()
SHOWN = 50  # assigned deployments listed, soonest to expire first


@register.inclusion_tag("admin/pools/overview.html")
def pools_overview() -> dict[str, Any]:
    rows = pools_demand()
    held = sorted((d | {"runtime": r["runtime"]} for r in rows for d in r["deployments"]),
                  key=lambda d: (d["expires_at"] is None, d["expires_at"] or 0))
    return {"rows": rows, "held": held[:SHOWN], "more": max(0, len(held) - SHOWN),
            "window": rows[0]["window_minutes"] if rows else 0, "last_pass": MonitorPass.objects.first(),
            "charts": occupancy_charts(hours=6), "width": WIDTH, "height": HEIGHT}

"""The audit trail: one row per operator action and per automatic one. Callers add one
line (``audit_record(...)``); writing the row never breaks the action it records."""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Iterable
from typing import Any

from pools.models import AuditEntry

log = logging.getLogger(__name__)
Source = AuditEntry.Source


def audit_record(*, actor: Any, action: str, source: str, slots: Iterable[object] = (),
                 users: Iterable[object] = (), result: str = "ok", detail: str = "") -> None:
    """``actor``: a user, or a name such as ``"system:watch"``. Slots and users may be
    objects or names (their ``str``)."""
    user = actor if hasattr(actor, "pk") else None
    name = getattr(actor, "username", None) or str(actor)
    try:
        AuditEntry.objects.create(
            actor=user, actor_name=name[:150], source=source, action=action[:64],
            slots=[str(s) for s in slots], users=[str(u) for u in users if u],
            result=result[:300], detail=detail[:4000])
    except Exception:  # the trail must never undo or block the action itself
        log.exception("could not write the audit entry for %s by %s", action, name)


def command_actor() -> str:
    """Who runs a management command: the login behind sudo if any, else the user."""
    try:
        login = os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:  # no passwd entry (a container): the uid still says something
        login = f"uid{os.getuid()}"
    return f"cli:{login}"


def system_actor(trigger: str) -> str:
    return f"system:{trigger}"


def audit_entries(*, limit: int = 100, action: str = "", actor: str = "", origin: str = "",
                  slot: str = "", user: str = "", since: object = None) -> list[AuditEntry]:
    """Selector: the newest ``limit`` entries matching every given filter."""
    rows = AuditEntry.objects.all()
    exact = {"action": action, "actor_name": actor, "source": origin}
    rows = rows.filter(**{key: value for key, value in exact.items() if value})
    if since:
        rows = rows.filter(at__gte=since)
    matched = [row for row in rows[:5000] if (not slot or slot in row.slots)
               and (not user or user in row.users)]  # JSON lists: filtered here, portably
    return matched[:limit]

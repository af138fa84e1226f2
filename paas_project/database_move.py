"""Moving an installation from one database to another (SQLite → PostgreSQL), with the
platform stopped: every row of every model is copied with its primary key, so users,
tokens, slots (status, generation, port, node), deployments and their history, the
audit log, invite codes and the task schedules come across as they were.

Django's own ``dumpdata``/``loaddata`` do the copying: they write rows raw (no
``auto_now`` rewrite, no model logic), and ``loaddata`` checks the foreign keys at the
end of its one transaction. Around them: the target must hold no rows, its schema is
made by ``migrate`` in a process of its own (our post-migrate seeds write to the
default database), the seeds are flushed, the sequences reset, and the row counts of
both sides compared."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import environ
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

from pools.errors import PaasError

TARGET = "move-target"


class DatabaseMoveError(PaasError):
    """The database could not be moved."""

    code = "database_move_failed"


def database_move(*, target_url: str, progress: Callable[[str], None]) -> dict[str, int]:
    """Copy everything from the configured database into ``target_url`` (an empty
    PostgreSQL database); returns model label → rows copied."""
    _target_add(target_url)
    try:
        _target_refuse_rows()
        progress("migrating the target")
        _target_migrate(target_url)
        call_command("flush", database=TARGET, interactive=False,
                     inhibit_post_migrate=True, verbosity=0)  # the seeds migrate made
        with tempfile.TemporaryDirectory(prefix="paas-move-") as tmp:
            dump = Path(tmp) / "everything.jsonl"
            progress("copying the rows")
            call_command("dumpdata", all=True, format="jsonl", output=str(dump),
                         database=DEFAULT_DB_ALIAS, verbosity=0)
            call_command("loaddata", str(dump), database=TARGET, verbosity=0)
        _sequences_reset()
        return _counts_compare()
    finally:
        connections[TARGET].close()


def _target_add(url: str) -> None:
    config = environ.Env.db_url_config(url)
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise DatabaseMoveError("the target must be a postgres:// URL")
    connections.settings[TARGET] = connections.configure_settings(
        {DEFAULT_DB_ALIAS: {"ENGINE": "django.db.backends.dummy"}, TARGET: config})[TARGET]


def _target_refuse_rows() -> None:
    """A target that holds any row (a platform already there, or another program's
    data) is refused before anything is written to it."""
    connection = connections[TARGET]
    with connection.cursor() as cursor:
        tables = [t for t in connection.introspection.table_names(cursor)
                  if t != "django_migrations"]
        holding = []
        for table in tables:
            cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")
            if cursor.fetchone():
                holding.append(table)
    if holding:
        raise DatabaseMoveError(
            "the target database is not empty (rows in " + ", ".join(sorted(holding)[:5])
            + (", ..." if len(holding) > 5 else "") + "): give an empty database")


def _target_migrate(url: str) -> None:
    env = {**os.environ, "PAAS_DATABASE_URL": url}
    run = subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput", "-v0"],
                         env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    if run.returncode:
        raise DatabaseMoveError("migrate on the target failed: " + run.stderr[-1000:])


def _copied_models() -> list[type[Model]]:
    return [m for m in apps.get_models(include_auto_created=True)
            if m._meta.managed and not m._meta.proxy]


def _sequences_reset() -> None:
    # Rows came with their ids: the next id must come after the largest copied one.
    connection = connections[TARGET]
    statements = connection.ops.sequence_reset_sql(no_style(), _copied_models())
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def _counts_compare() -> dict[str, int]:
    counts, wrong = {}, []
    for model in _copied_models():
        source = model._base_manager.using(DEFAULT_DB_ALIAS).count()
        target = model._base_manager.using(TARGET).count()
        counts[model._meta.label] = target
        if source != target:
            wrong.append(f"{model._meta.label}: {source} rows here, {target} there")
    if wrong:
        raise DatabaseMoveError("the copy does not match: " + "; ".join(wrong))
    return counts

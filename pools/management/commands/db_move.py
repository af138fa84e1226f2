"""``python manage.py db_move --to postgres://…``: copy this installation's database
(SQLite by default) into an empty PostgreSQL database, with the platform stopped.
Afterwards set ``PAAS_DATABASE_URL`` to the target and start the platform again; the
data dir (content store, secret key) stays where it is."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from paas_project.database_move import database_move
from pools.errors import PaasError


class Command(BaseCommand):
    help = "Copy everything into an empty PostgreSQL database (stop the platform first)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--to", required=True, metavar="URL",
                            help="postgres://user:password@host:port/database (empty)")

    def handle(self, *args: Any, to: str, **options: Any) -> None:
        try:
            counts = database_move(target_url=to, progress=self.stdout.write)
        except PaasError as error:
            raise CommandError(str(error)) from error
        for label, rows in sorted(counts.items()):
            if rows:
                self.stdout.write(f"{label}: {rows}")
        self.stdout.write(self.style.SUCCESS(
            f"moved {sum(counts.values())} rows; every table's count matches. Now set "
            "PAAS_DATABASE_URL to the target and start the platform."))

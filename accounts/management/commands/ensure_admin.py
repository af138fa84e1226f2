"""Create the operators' admin account once: credentials from PAAS_ADMIN_USER /
PAAS_ADMIN_PASSWORD, or a generated password printed once and kept in the data dir."""

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from paas_project.private_files import private_file_write


class Command(BaseCommand):
    help = "Create the admin account if it does not exist."

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("PAAS_ADMIN_USER", "admin")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"admin account '{username}' exists")
            return
        given = os.environ.get("PAAS_ADMIN_PASSWORD")
        if given is not None and not given.strip():
            # An empty value is a mistake (an unset shell variable), not a wish for a
            # generated password nobody would be told.
            raise CommandError("PAAS_ADMIN_PASSWORD is set but empty: give a password, or "
                               "unset it to have one generated")
        password = given or secrets.token_urlsafe(12)
        users.create_superuser(username, os.environ.get("PAAS_ADMIN_EMAIL", ""), password)
        if given is None:
            secret_file = settings.DATA_DIR / "admin-password"
            private_file_write(path=secret_file, text=password + "\n")
            self.stdout.write(self.style.WARNING(
                f"created admin account '{username}' with password: {password}\n"
                f"(also saved in {secret_file}; change it in the admin)"))
        else:
            self.stdout.write(f"created admin account '{username}'")

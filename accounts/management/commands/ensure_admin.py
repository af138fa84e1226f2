"""Create the operators' admin account once: credentials from PAAS_ADMIN_USER /
PAAS_ADMIN_PASSWORD, or a generated password printed once and kept in the data dir."""

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin account if it does not exist."

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("PAAS_ADMIN_USER", "admin")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"admin account '{username}' exists")
            return
        password = os.environ.get("PAAS_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.create_superuser(username, os.environ.get("PAAS_ADMIN_EMAIL", ""), password)
        if "PAAS_ADMIN_PASSWORD" not in os.environ:
            secret_file = settings.DATA_DIR / "admin-password"
            secret_file.write_text(password + "\n")
            secret_file.chmod(0o600)
            self.stdout.write(self.style.WARNING(
                f"created admin account '{username}' with password: {password}\n"
                f"(also saved in {secret_file}; change it in the admin)"))
        else:
            self.stdout.write(f"created admin account '{username}'")

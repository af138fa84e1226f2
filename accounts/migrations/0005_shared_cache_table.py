"""The table of the database cache (``CACHES["default"]`` without Redis), where throttle
counts are shared across worker processes. Created here so every ``migrate`` (make run,
the tests, the Ansible playbook) has it; ``createcachetable`` skips what exists and
caches that are not in the database."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):  # type: ignore[no-untyped-def]
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):

    dependencies = [("accounts", "0004_username_unique_case_insensitive")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]

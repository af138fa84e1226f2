"""One account per user name in any case: a unique index on LOWER(username), so two
registrations racing past the case-insensitive check cannot both insert (the service
turns the loser's IntegrityError into "already taken"). Same SQL on SQLite and PostgreSQL.
"""

from django.db import migrations

INDEX = "accounts_user_username_lower_uniq"


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_quota_lifetime_overrides"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE UNIQUE INDEX {INDEX} ON auth_user (LOWER(username))",
            reverse_sql=f"DROP INDEX {INDEX}",
        ),
    ]

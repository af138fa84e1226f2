"""Runtime.revision, bumped by a trigger on every UPDATE of the row (any writer, any
process): the launch's per-process runtime cache checks it (pools.services)."""

from django.db import migrations, models

# Whatever revision an UPDATE writes (a save() of a row read before another change
# writes back an older one), the row ends one above the revision it had.
SQLITE = """
CREATE TRIGGER pools_runtime_revision AFTER UPDATE ON pools_runtime
FOR EACH ROW WHEN NEW.revision <= OLD.revision
BEGIN
    UPDATE pools_runtime SET revision = OLD.revision + 1 WHERE id = NEW.id;
END
"""
POSTGRESQL = [
    """
    CREATE FUNCTION pools_runtime_revision() RETURNS trigger AS $$
    BEGIN
        NEW.revision := OLD.revision + 1;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER pools_runtime_revision BEFORE UPDATE ON pools_runtime
    FOR EACH ROW EXECUTE FUNCTION pools_runtime_revision()
    """,
]
DROP = {"sqlite": ["DROP TRIGGER IF EXISTS pools_runtime_revision"],
        "postgresql": ["DROP TRIGGER IF EXISTS pools_runtime_revision ON pools_runtime",
                       "DROP FUNCTION IF EXISTS pools_runtime_revision()"]}


def _run(schema_editor, statements):
    for sql in statements:
        schema_editor.execute(sql)


def create_trigger(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise RuntimeError(f"no runtime revision trigger for the {vendor} database")
    _run(schema_editor, [SQLITE] if vendor == "sqlite" else POSTGRESQL)


def drop_trigger(apps, schema_editor):
    _run(schema_editor, DROP.get(schema_editor.connection.vendor, []))


class Migration(migrations.Migration):

    dependencies = [
        ('pools', '0010_poolcontainer_image'),
    ]

    operations = [
        migrations.AddField(
            model_name='runtime',
            name='revision',
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]

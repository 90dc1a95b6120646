"""The database itself refuses to change or remove a stored event.

The model and its queryset already refuse; these triggers also stop raw SQL, a shell or another
program sharing the database. Row triggers only: on PostgreSQL an administrator's TRUNCATE
still wipes the table (the deliberate way to empty a database, and how test databases are
flushed). A later migration that must rewrite events (a data migration like 0002), or that
remakes the table on SQLite (which drops its triggers), has to drop and create them again.
"""

from django.db import migrations

MESSAGE = "Events are append-only: eventstore_event rows cannot be updated or deleted"

GUARD = {
    "postgresql": [
        f"""
        CREATE OR REPLACE FUNCTION eventstore_event_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{MESSAGE} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
        END;
        $$
        """,
        """
        CREATE TRIGGER eventstore_event_append_only
        BEFORE UPDATE OR DELETE ON eventstore_event
        FOR EACH ROW EXECUTE FUNCTION eventstore_event_append_only()
        """,
    ],
    "sqlite": [
        f"""
        CREATE TRIGGER eventstore_event_no_update BEFORE UPDATE ON eventstore_event
        BEGIN SELECT RAISE(ABORT, '{MESSAGE} (UPDATE refused)'); END
        """,
        f"""
        CREATE TRIGGER eventstore_event_no_delete BEFORE DELETE ON eventstore_event
        BEGIN SELECT RAISE(ABORT, '{MESSAGE} (DELETE refused)'); END
        """,
    ],
}

UNGUARD = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS eventstore_event_append_only ON eventstore_event",
        "DROP FUNCTION IF EXISTS eventstore_event_append_only()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS eventstore_event_no_update",
        "DROP TRIGGER IF EXISTS eventstore_event_no_delete",
    ],
}


# params=None: the statements are sent as they are (PL/pgSQL's own `%` is not a placeholder).
def guard_the_log(apps, schema_editor):
    """Create the triggers that refuse UPDATE and DELETE on the event table."""
    for statement in GUARD.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, params=None)


def unguard_the_log(apps, schema_editor):
    """Drop those triggers."""
    for statement in UNGUARD.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("eventstore", "0004_vaultedsecret"),
    ]

    operations = [
        migrations.RunPython(guard_the_log, unguard_the_log),
    ]

"""Django's SQLite backend, except that flushing a table lifts its triggers for the flush.

pytest-django empties the database after every transactional test with `flush`, which on
SQLite is a `DELETE FROM` per table, and the event table's trigger refuses deletes (PostgreSQL
flushes with TRUNCATE, which row triggers do not see). Here the flush drops the triggers of the
tables it empties, deletes, and creates them again as they were, all in the flush's one
transaction. Tests only: in production `manage.py flush` on SQLite fails once the log holds an
event, as it should.
"""

from itertools import chain

from django.db.backends.sqlite3 import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    """SQLite operations whose flush lifts, then restores, the flushed tables' triggers."""

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        flushed = set(tables)
        if tables and allow_cascade:  # the tables Django's flush adds, as it adds them
            flushed = set(chain.from_iterable(self._references_graph(table) for table in tables))
        triggers = self._triggers(flushed)
        drops = [f"DROP TRIGGER {self.quote_name(name)};" for name, _ in triggers]
        creates = [f"{sql};" for _, sql in triggers]
        return [*drops, *statements, *creates]

    def _triggers(self, tables):
        """(name, CREATE statement) of every trigger on these tables."""
        if not tables:
            return []
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            )
            return [(name, sql) for name, table, sql in cursor.fetchall() if table in tables]


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's SQLite connection with the flush above."""

    ops_class = DatabaseOperations

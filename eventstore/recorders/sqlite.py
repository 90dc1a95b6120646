"""SQLite's recorder: the base statements as they are; only its lock timeout reads differently."""

from __future__ import annotations

from django.db import OperationalError

from eventstore.recorders.base import Recorder


class SqliteRecorder(Recorder):
    """SQLite: one writer at a time (IMMEDIATE transactions), so positions commit in order."""

    @staticmethod
    def is_lock_timeout(error: OperationalError) -> bool:
        """Whether the busy timeout ran out waiting for the write lock."""
        return "database is locked" in str(error)

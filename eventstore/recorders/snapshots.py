"""The statements on snapshots (`Snapshot`): an aggregate's latest saved state, written as an
upsert of many rows."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from eventstore.models import Snapshot
from eventstore.recorders.tables import RecorderBase, current_connection, written_fields


class SnapshotRecorder(RecorderBase):
    """Snapshots."""

    def upsert_snapshots(self, rows: Sequence[tuple[str, str, int, int, str]]) -> None:
        """Write snapshots of `Snapshot`'s fields in their declared order but `taken_at` (now):
        (aggregate_type, aggregate_id, version, state_version, state JSON text), replacing each
        aggregate's previous one."""
        s = self.snapshots
        fields = written_fields(Snapshot)
        columns = [field.column for field in fields]
        moved = [s.version, s.state_version, s.state, s.taken_at]
        values = self._values(fields, len(rows))
        now = self.db_datetime(timezone.now())
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {s} ({', '.join(columns)}) VALUES {values} "
                f"ON CONFLICT ({s.aggregate_type}, {s.aggregate_id}) DO UPDATE SET "
                + ", ".join(f"{column} = excluded.{column}" for column in moved),
                [value for row in rows for value in (*row, now)],
            )

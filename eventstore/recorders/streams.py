"""The statements on what the store keeps per stream beside its events: the stream index
(`Stream`) and snapshots (`Snapshot`), each written as an upsert of many rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from eventstore.models import Snapshot, Stream
from eventstore.recorders.tables import (
    INSERT_CHUNK,
    RecorderBase,
    current_connection,
    written_fields,
)


class StreamRecorder(RecorderBase):
    """The stream index and snapshots."""

    def upsert_streams(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert or move on stream index rows of `Stream`'s fields in their declared order
        (aggregate_type, aggregate_id, version, last_event_type, last_position,
        first_recorded_at, last_recorded_at); an existing row keeps its `first_recorded_at`."""
        s = self.streams
        fields = written_fields(Stream)
        columns = [field.column for field in fields]
        moved = [s.version, s.last_event_type, s.last_position, s.last_recorded_at]
        adapt = current_connection().ops.adapt_datetimefield_value
        with current_connection().cursor() as cursor:
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                values = self._values(fields, len(chunk))
                cursor.execute(
                    f"INSERT INTO {s} ({', '.join(columns)}) VALUES {values} "
                    f"ON CONFLICT ({s.aggregate_type}, {s.aggregate_id}) DO UPDATE SET "
                    + ", ".join(f"{column} = excluded.{column}" for column in moved),
                    [
                        value
                        for kind, ident, version, event_type, position, first, last in chunk
                        for value in (
                            kind,
                            ident,
                            version,
                            event_type,
                            position,
                            adapt(first),
                            adapt(last),
                        )
                    ],
                )

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

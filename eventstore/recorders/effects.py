"""The statements on calls owed to the outside world (`eventstore.effects`): recorded with a
subscriber's checkpoint, then claimed and finished one at a time, outside its transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.utils import timezone

from eventstore.models import Effect
from eventstore.recorders.tables import RecorderBase, as_uuid, current_connection


class EffectRecorder(RecorderBase):
    """Owed calls: recorded, claimed, finished."""

    def _due(self) -> str:
        f = self.effects
        return (
            f"{f.subscriber} = %s AND {f.status} = '{Effect.Status.PENDING.value}' "
            f"AND {f.due_at} <= %s"
        )

    def owe_effect(
        self, subscriber: str, event_id: uuid.UUID, position: int, event_type: str
    ) -> None:
        """Record, inside the checkpoint's transaction, that `subscriber` owes a call for the
        event (due now); a second record of the same event is skipped."""
        f = self.effects
        now = self.db_datetime(timezone.now())
        insert, params = self._insert_row(
            Effect,
            {
                "subscriber": subscriber,
                "event_id": self.db_uuid(event_id),
                "position": position,
                "event_type": event_type,
                "status": Effect.Status.PENDING.value,
                "attempts": 0,
                "due_at": now,
                "last_error": "",
                "created_at": now,
                "updated_at": now,
            },
        )
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"{insert} ON CONFLICT ({f.subscriber}, {f.event_id}) DO NOTHING", params
            )

    def effect_due(self, subscriber: str, now: datetime) -> bool:
        """Whether a pending call of the subscriber is due: one lock-free look."""
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {self.effects} WHERE {self._due()} LIMIT 1",
                [subscriber, self.db_datetime(now)],
            )
            return cursor.fetchone() is not None

    def claim_effect(
        self, subscriber: str, now: datetime, until: datetime, token: uuid.UUID
    ) -> tuple[int, uuid.UUID, int] | None:
        """Take the oldest due pending call of the subscriber: count the attempt, store `token`
        and push its due time to `until`, in one statement of its own (committed at once);
        (id, event id, attempt) or None. Concurrent claimers do not take one row twice (where
        rows are not locked, the single writer serialises them)."""
        f = self.effects
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {f} SET {f.attempts} = {f.attempts} + 1, {f.claim} = %s, "
                f"{f.due_at} = %s, {f.updated_at} = %s WHERE {f.id} = (SELECT {f.id} FROM {f} "
                f"WHERE {self._due()} ORDER BY {f.due_at}, {f.id} LIMIT 1"
                f"{self._for_update(skip_locked=True)}) "
                f"RETURNING {f.id}, {f.event_id}, {f.attempts}",
                [
                    self.db_uuid(token),
                    self.db_datetime(until),
                    self.db_datetime(now),
                    subscriber,
                    self.db_datetime(now),
                ],
            )
            row = cursor.fetchone()
        return None if row is None else (row[0], as_uuid(row[1]), row[2])

    def finish_effect(
        self,
        effect_id: int,
        token: uuid.UUID,
        *,
        status: str,
        last_error: str,
        due_at: datetime | None,
        now: datetime,
    ) -> bool:
        """Record how a claimed call went, unless another claim has replaced `token` since."""
        f = self.effects
        due = f"{f.due_at} = %s, " if due_at is not None else ""
        params = [status, last_error, *([self.db_datetime(due_at)] if due_at is not None else [])]
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {f} SET {f.claim} = NULL, {f.status} = %s, {f.last_error} = %s, {due}"
                f"{f.updated_at} = %s WHERE {f.id} = %s AND {f.claim} = %s",
                [*params, self.db_datetime(now), effect_id, self.db_uuid(token)],
            )
            return cursor.rowcount == 1

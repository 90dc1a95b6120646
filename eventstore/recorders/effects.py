"""The statements on calls owed to the outside world (`eventstore.follower.effects`): recorded
with a subscriber's checkpoint, then claimed and finished one at a time, outside its
transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from eventstore.models import Effect
from eventstore.recorders.events import EventRecorder
from eventstore.recorders.tables import as_datetime, as_uuid, current_connection
from eventstore.records import RecordedEvent

# Requests per statement of `requests_progress` (SQLite allows 500 SELECTs in one UNION).
PROGRESS_CHUNK = 100


class EffectRecorder(EventRecorder):
    """Owed calls: recorded, claimed, finished."""

    def _due(self) -> str:
        """A subscriber's calls due: pending ones, and withdrawn ones still to reconcile (a
        withdrawn call with nothing left to do has no due time)."""
        f = self.effects
        statuses = f"'{Effect.Status.PENDING.value}', '{Effect.Status.WITHDRAWN.value}'"
        return f"{f.subscriber} = %s AND {f.status} IN ({statuses}) AND {f.due_at} <= %s"

    def owe_effects(
        self,
        owed: Sequence[tuple[str, uuid.UUID, int, str]],
        *,
        claim: tuple[uuid.UUID, datetime] | None = None,
    ) -> dict[tuple[str, uuid.UUID], int]:
        """Record, in one statement inside the transaction that appends or handles the events,
        that a call is owed for each (subscriber, event id, position, event type), due now; a
        second record of the same call is skipped. With `claim` (a token and the end of its
        lease) each is recorded claimed for its first attempt, as `claim_effects` would claim
        it. The new effects' ids by (subscriber, event id); those owed before are left out."""
        f = self.effects
        now = self.db_datetime(timezone.now())
        token, until = claim or (None, None)
        columns = [
            "subscriber", "event_id", "position", "event_type", "status", "attempts",
            "due_at", "claim", "started_at", "last_error", "created_at", "updated_at",
        ]  # fmt: skip
        shared = [
            Effect.Status.PENDING.value,
            0 if claim is None else 1,
            now if claim is None else self.db_datetime(until),
            None if token is None else self.db_uuid(token),
            None if claim is None else now,
            "",
            now,
            now,
        ]

        def build() -> str:
            fields = [Effect._meta.get_field(name) for name in columns]
            return (
                f"INSERT INTO {f} ({', '.join(field.column for field in fields)}) "
                f"VALUES {self._values(fields, len(owed))} "
                f"ON CONFLICT ({f.subscriber}, {f.event_id}) DO NOTHING "
                f"RETURNING {f.id}, {f.subscriber}, {f.event_id}"
            )

        params = [
            value
            for name, event_id, position, event_type in owed
            for value in (name, self.db_uuid(event_id), position, event_type, *shared)
        ]
        with current_connection().cursor() as cursor:
            cursor.execute(self._statement(("owe", len(owed)), build), params)
            return {(name, as_uuid(event_id)): ident for ident, name, event_id in cursor.fetchall()}

    def effect_due(self, subscriber: str, now: datetime) -> bool:
        """Whether a pending call of the subscriber is due: one lock-free check."""
        return subscriber in self.owing([subscriber], now)

    def owing(self, subscribers: Sequence[str], now: datetime) -> set[str]:
        """Which of the subscribers have a pending call due: one lock-free check."""
        f = self.effects
        due = f"SELECT 1 FROM {f} WHERE {self._due()} LIMIT 1"  # one index seek per subscriber
        checks = " UNION ALL ".join(
            f"SELECT CAST(%s AS VARCHAR(100)) WHERE EXISTS ({due})" for _ in subscribers
        )
        when = self.db_datetime(now)
        with current_connection().cursor() as cursor:
            cursor.execute(checks, [value for name in subscribers for value in (name, name, when)])
            return {row[0] for row in cursor.fetchall()}

    def oldest_unstarted_call(self, subscribers: Sequence[str]) -> datetime | None:
        """When the oldest call the subscribers owe and have not begun fell due (None: none
        waits): one index range per subscriber over its pending calls."""
        if not subscribers:
            return None
        f = self.effects
        marks = ", ".join(["%s"] * len(subscribers))
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT MIN({f.due_at}) FROM {f} WHERE {f.subscriber} IN ({marks}) "
                f"AND {f.status} = '{Effect.Status.PENDING.value}' AND {f.attempts} = 0",
                list(subscribers),
            )
            return as_datetime(cursor.fetchone()[0])

    def claim_effects(
        self, subscriber: str, now: datetime, until: datetime, token: uuid.UUID, limit: int
    ) -> list[tuple[int, int, str, RecordedEvent]]:
        """Take the subscriber's oldest due calls (`_due`), at most `limit`: count an attempt on
        each, store `token` and push its due time to `until`, in one statement of its own
        (committed at once); each as (id, attempt, status, the event it is owed for), in the
        order owed. Concurrent claimers do not take one row twice (where rows are not locked,
        the single writer serialises them). Here the events are read by a second statement."""
        f = self.effects
        with current_connection().cursor() as cursor:
            cursor.execute(
                self._claim(f.event_id), self._claim_params(subscriber, now, until, token, limit)
            )
            claimed = {
                as_uuid(event_id): (effect_id, attempt, status)
                for effect_id, attempt, status, event_id in cursor.fetchall()
            }
        if not claimed:
            return []
        events = {event.event_id: event for event in self.read_ids(list(claimed))}
        return sorted(
            (*claimed[event_id], event) for event_id, event in events.items() if event_id in claimed
        )

    def _claim(self, returning: str, *, join: str = "", on: str = "") -> str:
        """The claim's UPDATE, returning id, attempts, status and then `returning`; `join` names a
        table (`FROM ...`) whose rows `on` matches to the claimed ones."""
        f = self.effects
        return (
            f"UPDATE {f} SET {f.attempts} = {f.attempts} + 1, {f.claim} = %s, "
            f"{f.due_at} = %s, {f.updated_at} = %s, "
            f"{f.started_at} = COALESCE({f}.{f.started_at}, %s){join} "
            f"WHERE {on}{f}.{f.id} IN (SELECT {f.id} FROM {f} WHERE {self._due()} "
            f"ORDER BY {f.due_at}, {f.id} LIMIT %s"
            f"{self._for_update(skip_locked=True)}) "
            f"RETURNING {f}.{f.id}, {f}.{f.attempts}, {f}.{f.status}, {returning}"
        )

    def _claim_params(
        self, subscriber: str, now: datetime, until: datetime, token: uuid.UUID, limit: int
    ) -> list[Any]:
        return [
            self.db_uuid(token),
            self.db_datetime(until),
            self.db_datetime(now),
            self.db_datetime(now),
            subscriber,
            self.db_datetime(now),
            int(limit),
        ]

    def finish_effect(
        self,
        effect_id: int,
        token: uuid.UUID,
        *,
        status: str,
        last_error: str,
        due_at: datetime | None,
        now: datetime,
        settle: bool = False,
    ) -> bool:
        """Record how a claimed call went, unless another claim has replaced `token` since:
        its status and error, and `due_at` when given (`settle`: none, it is never due again)."""
        f = self.effects
        due = f"{f.due_at} = %s, " if due_at is not None or settle else ""
        moved = [] if not due else [None if settle else self.db_datetime(due_at)]
        params = [status, last_error, *moved]
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {f} SET {f.claim} = NULL, {f.status} = %s, {f.last_error} = %s, {due}"
                f"{f.updated_at} = %s WHERE {f.id} = %s AND {f.claim} = %s",
                [*params, self.db_datetime(now), effect_id, self.db_uuid(token)],
            )
            return cursor.rowcount == 1

    def requests_progress(
        self, requests: Sequence[tuple[str, str, Sequence[str]]]
    ) -> list[tuple[datetime, bool, datetime | None] | None]:
        """For each (correlation id, request type, reply types), how the correlation's last
        event of that request type stands: when it was recorded, whether an event of one of the
        reply types was recorded in the correlation after it, and when the first call owed for
        it began (None: none began, or none is owed); None when no such request was recorded.
        Lock-free, one statement per PROGRESS_CHUNK requests (a few index seeks each)."""
        found: list[tuple[datetime, bool, datetime | None] | None] = [None] * len(requests)
        for first in range(0, len(requests), PROGRESS_CHUNK):
            chunk = requests[first : first + PROGRESS_CHUNK]
            selects, params = [], []
            for n, (correlation_id, request_type, reply_types) in enumerate(chunk, start=first):
                selects.append(self._progress_select(len(reply_types)))
                params += [correlation_id, *reply_types, n, correlation_id, request_type]
            with current_connection().cursor() as cursor:
                cursor.execute(" UNION ALL ".join(selects), params)
                for n, requested, replied, started in cursor.fetchall():
                    found[n] = as_datetime(requested), bool(replied), as_datetime(started)
        return found

    def _progress_select(self, replies: int) -> str:
        """One request's row of `requests_progress`: (n, recorded at, replied, started at)."""
        e, f = self.events, self.effects
        marks = ", ".join(["%s"] * replies) or "NULL"
        return (
            f"SELECT r.n, r.recorded_at, EXISTS (SELECT 1 FROM {e} x "
            f"WHERE x.{e.correlation_id} = %s AND x.{e.position} > r.position "
            f"AND x.{e.event_type} IN ({marks})), "
            f"(SELECT MIN({f.started_at}) FROM {f} WHERE {f.event_id} = r.event_id) "
            f"FROM (SELECT CAST(%s AS INTEGER) AS n, {e.event_id} AS event_id, "
            f"{e.position} AS position, {e.recorded_at} AS recorded_at FROM {e} "
            f"WHERE {e.correlation_id} = %s AND {e.event_type} = %s "
            f"ORDER BY {e.position} DESC LIMIT 1) r"
        )

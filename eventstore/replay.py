"""Rebuilding and verifying projections by replaying the log.

Online (`rebuild_online`, `verify_online`, what the commands do by default): the projections
replay into copies of their tables beside the live ones while appends go on, following the log
as subscribers do; a rebuild then switches them in one projection at a time, each switch
holding appends for that projection's last few events and the renames of its own tables; a
check compares the copies with the live tables as one snapshot shows them. In place (`rebuild`,
`verify`): one transaction that holds appends from start to end.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, models, transaction

from eventstore.models import Event
from eventstore.projections import Projection
from eventstore.recorders import recorder
from eventstore.recorders.shadows import retired_name, shadow_name
from eventstore.records import START, LogPoint, RecordedEvent
from eventstore.store import AppendTimeout, event_store

Progress = Callable[[int], None]
# Called while a copy follows the log: how many positions it is behind the log's head.
Lag = Callable[[int], None]


@dataclass
class RebuildResult:
    """What a rebuild replayed."""

    events: int
    seconds: float
    # Online rebuilds switch each projection in on its own: how many switches, the longest time
    # appends waited on one, and the most tries one took (a try gives up when it waits on a lock
    # past SWITCH_LOCK_TIMEOUT_MS).
    switches: int = 0
    held_seconds: float = 0.0
    switch_attempts: int = 0

    @property
    def events_per_second(self) -> float:
        """Replay throughput (0 when nothing was replayed)."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _event_types(projections: Sequence[Projection]) -> list[str] | None:
    """The union of the event types the projections read (None when one reads everything)."""
    if any(projection.event_types is None for projection in projections):
        return None
    return sorted(set().union(*(projection.event_types for projection in projections)))


def count_replay_events(projections: Sequence[Projection]) -> int:
    """How many events a rebuild of these projections replays."""
    return event_store.count(event_types=_event_types(projections))


def rebuild(
    projections: Sequence[Projection],
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> RebuildResult:
    """Reset the projections' read models and replay the log into them, all in one transaction.

    Appenders wait while it runs, so the rebuilt read models match the log exactly; a failure
    leaves the old read models untouched.
    """
    batch_size = batch_size or int(settings.EVENTSTORE_BATCH_SIZE)
    started = time.perf_counter()
    replayed = 0
    with transaction.atomic():
        event_store.hold_appends()
        for projection in projections:
            projection.reset()
        after = 0
        event_types = _event_types(projections)
        while True:
            page = event_store.read_page(
                after_position=after, limit=batch_size, event_types=event_types
            )
            if not page:
                break
            for projection in projections:
                projection.apply_batch(page)
            replayed += len(page)
            after = page[-1].position
            if progress is not None:
                progress(len(page))
            if len(page) < batch_size:
                break
    return RebuildResult(events=replayed, seconds=time.perf_counter() - started)


@dataclass
class RowDifference:
    """One read-model row that differs between the live tables and a fresh rebuild."""

    projection: str
    model: str
    key: dict[str, Any]
    live: dict[str, Any] | None
    rebuilt: dict[str, Any] | None
    fields: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """`missing` (only in the rebuild), `unexpected` (only live) or `changed`."""
        if self.live is None:
            return "missing"
        if self.rebuilt is None:
            return "unexpected"
        return "changed"

    def describe(self) -> str:
        """One line for humans."""
        key = ", ".join(f"{name}={value!r}" for name, value in self.key.items())
        if self.kind == "missing":
            return f"{self.model} [{key}]: missing from the live read model"
        if self.kind == "unexpected":
            return f"{self.model} [{key}]: in the live read model but not derived from any event"
        changes = "; ".join(
            f"{name}: live {self.live[name]!r} != rebuilt {self.rebuilt[name]!r}"
            for name in self.fields
        )
        return f"{self.model} [{key}]: {changes}"


def _capture(
    projection: Projection, model: type[models.Model], connection: Any = None
) -> dict[tuple, dict[str, Any]]:
    """The model's rows by their key, read on `connection` (default: Django's own)."""
    key_fields = projection.row_key(model)
    columns = projection.compared_fields(model)
    queryset = model.objects.order_by().values(*columns)
    rows: dict[tuple, dict[str, Any]] = {}
    for row in (
        queryset.iterator(chunk_size=2000)
        if connection is None
        else _values_on(queryset, connection)
    ):
        rows[tuple(row[name] for name in key_fields)] = row
    return rows


def _values_on(queryset: models.QuerySet, connection: Any) -> Iterator[dict[str, Any]]:
    """The rows of a `values()` query, run on a connection Django's router does not know."""
    query = queryset.query
    names = [*query.extra_select, *query.values_select, *query.annotation_select]
    compiler = query.get_compiler(connection=connection)
    for row in compiler.results_iter(chunked_fetch=False):
        yield dict(zip(names, row, strict=True))


def verify(
    projections: Sequence[Projection],
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
    keep: bool = False,
) -> tuple[list[RowDifference], RebuildResult]:
    """Rebuild and list every row that differs from the live read models. The rebuild is
    rolled back, unless `keep`: then it replaces the live read models, as `rebuild` does."""
    differences: list[RowDifference] = []
    with transaction.atomic():
        event_store.hold_appends()
        live = {
            (projection.name, model): _capture(projection, model)
            for projection in projections
            for model in projection.models
        }
        result = rebuild(projections, batch_size=batch_size, progress=progress)
        for projection in projections:
            for model in projection.models:
                differences.extend(_compare(projection, model, live[(projection.name, model)]))
        if not keep:
            transaction.set_rollback(True)
    return differences, result


def _compare(
    projection: Projection, model: type[models.Model], live: dict[tuple, dict[str, Any]]
) -> list[RowDifference]:
    rebuilt = _capture(projection, model)
    key_fields = projection.row_key(model)
    label = model._meta.label
    differences = []
    for key in sorted(live.keys() | rebuilt.keys(), key=repr):
        live_row, rebuilt_row = live.get(key), rebuilt.get(key)
        if live_row == rebuilt_row:
            continue
        changed = (
            [name for name in live_row if live_row[name] != rebuilt_row[name]]
            if live_row is not None and rebuilt_row is not None
            else []
        )
        differences.append(
            RowDifference(
                projection.name,
                label,
                dict(zip(key_fields, key, strict=True)),
                live_row,
                rebuilt_row,
                changed,
            )
        )
    return differences


# --- online: copies beside the live tables ------------------------------------------------------

# The switch gives up on a lock it waits for longer than this (appenders still running, readers
# of a table it renames), then follows the log again and tries once more, up to SWITCH_ATTEMPTS.
SWITCH_LOCK_TIMEOUT_MS = 100
SWITCH_ATTEMPTS = 50
# The copies are close enough to switch when a read of the log finds fewer events than this.
CLOSE_ENOUGH = 50
FOLLOW_TRIES = 20
# What the commands pace an online replay at: after each batch it read and replayed while
# following the log, it sleeps this many times as long as the batch took (0: flat out), leaving
# the CPU to the orders it shares the machine with.
DEFAULT_PACE = 1.0


class RebuildRefused(Exception):
    """Another rebuild or check of one of the projections is running."""


def _tables(projections: Sequence[Projection]) -> list[str]:
    return [model._meta.db_table for projection in projections for model in projection.models]


def check_pace(pace: float) -> float:
    """`pace` if it is a finite number of 0 or more, else ValueError."""
    if not (math.isfinite(pace) and pace >= 0):
        raise ValueError(f"pace must be a finite number of 0 or more, not {pace!r}")
    return pace


def _lock_wait_ran_out(error: OperationalError) -> bool:
    """Whether `error` says a lock wait ran past its timeout: as the connection's execute
    wrapper raises it (`AppendTimeout`), or as the database does."""
    return isinstance(error, AppendTimeout) or recorder().is_lock_timeout(error)


@contextmanager
def _rebuild_locks(projections: Sequence[Projection]) -> Iterator[None]:
    """Hold each projection's rebuild lock (see `ShadowRecorder.try_lock_rebuild`), or refuse."""
    taken: list[str] = []
    try:
        for projection in projections:
            if not recorder().try_lock_rebuild(projection.name):
                raise RebuildRefused(
                    f"another rebuild or check of {projection.name} is running: "
                    "try again once it has ended"
                )
            taken.append(projection.name)
        yield
    finally:
        for name in reversed(taken):
            recorder().unlock_rebuild(name)


@contextmanager
def _into_copies(tables: Sequence[str]) -> Iterator[None]:
    """Run this connection's statements in the block against the tables' copies: each of the
    tables' names in their text, quoted or not, names the copy instead."""
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    names = re.compile(r'"?\b(' + "|".join(re.escape(table) for table in tables) + r')\b"?')

    def rewrite(execute, sql, params, many, context):
        return execute(
            names.sub(lambda match: quote(shadow_name(match.group(1))), sql), params, many, context
        )

    with connection.execute_wrapper(rewrite):
        yield


def _drop_copies(tables: Sequence[str]) -> None:
    """Drop what a rebuild or check that ended early left: copies, retired tables."""
    for table in tables:
        with transaction.atomic():
            recorder().drop_table(shadow_name(table))
            recorder().drop_table(retired_name(table))


def _apply(projections: Sequence[Projection], tables: Sequence[str], page) -> None:
    with _into_copies(tables), transaction.atomic():
        for projection in projections:
            projection.apply_batch(page)


@dataclass
class _Copies:
    """Copies of the tables of the projections not switched in yet, and how far into the log
    they are."""

    projections: list[Projection]
    batch_size: int
    progress: Progress | None
    lag: Lag | None
    pace: float = 0.0
    tables: list[str] = field(init=False)
    index_names: dict[str, dict[str, str]] = field(init=False)
    point: LogPoint = START
    replayed: int = 0
    longest_hold: float = 0.0

    def __post_init__(self) -> None:
        self.projections = list(self.projections)
        self.tables = _tables(self.projections)
        self.event_types = _event_types(self.projections)
        _drop_copies(self.tables)
        with transaction.atomic():
            self.index_names = {table: recorder().create_shadow(table) for table in self.tables}

    def apply(self, page: list[RecordedEvent]) -> None:
        """Replay a page into the copies."""
        if not page:
            return
        _apply(self.projections, self.tables, page)
        self.point = page[-1].log_point
        self._count(len(page))

    def _count(self, events: int) -> None:
        self.replayed += events
        if self.progress is not None:
            self.progress(events)

    def follow(self) -> None:
        """Replay the log into the copies, appends going on all along, until a read finds
        fewer than CLOSE_ENOUGH events (or, when appends come too fast for that, until
        FOLLOW_TRIES reads in a row found less than a batch, or a round up to the head leaves no
        less behind than the round before): what is left for the switch to replay is then
        short, or as short as following can make it. After each batch it goes on from, it
        sleeps `pace` times as long as the batch took."""
        short_reads = 0
        target, left_before = event_store.last_position(), None
        while True:
            began = time.perf_counter()
            page = event_store.read_new(
                self.point, limit=self.batch_size, event_types=self.event_types
            )
            self.apply(page)
            head = event_store.last_position()
            if self.lag is not None:
                self.lag(max(0, head - self.point.position))
            short_reads = short_reads + 1 if len(page) < self.batch_size else 0
            if len(page) < min(self.batch_size, CLOSE_ENOUGH) or short_reads >= FOLLOW_TRIES:
                return
            if self.point.position >= target:
                # A round ends where the log's head stood when it began. Appends that outrun
                # the replay would keep every read full for ever: go on only while each round
                # leaves less behind than the one before; the rest is the switch's (or the
                # check's snapshot's) to replay.
                left = head - self.point.position
                if left_before is not None and left >= left_before:
                    return
                target, left_before = head, left
            if self.pace:
                time.sleep(self.pace * (time.perf_counter() - began))

    def catch_up(self, projection: Projection) -> None:
        """Replay into `projection`'s copies every event of its types this transaction sees
        after the copies' point (appends held). The point stays: the other copies replay
        these events when they follow next; those only `projection` reads are counted here."""
        tables = _tables([projection])
        event_types = _event_types([projection])
        others = _event_types([other for other in self.projections if other is not projection])
        theirs = None if others is None else set(others)  # None: another one reads every event
        point = self.point
        while page := recorder().read_past(point, self.batch_size, event_types):
            _apply([projection], tables, page)
            point = page[-1].log_point
            if theirs is not None:
                self._count(sum(1 for event in page if event.event_type not in theirs))

    def switch(self, projection: Projection) -> None:
        """Hold appends, replay `projection`'s last events, rename its copies in. Raises
        OperationalError when a lock wait ran past SWITCH_LOCK_TIMEOUT_MS (nothing switched).
        `longest_hold` keeps the longest time appends waited on a switch, from asking for the
        hold (on PostgreSQL, appenders queue behind the request) to the commit or rollback.
        Once switched in, the projection's inline updates keep its rebuilt tables live, and the
        copies left to build go on without it."""
        tables = _tables([projection])
        replayed = self.replayed
        held_from = None
        try:
            with transaction.atomic():
                recorder().limit_lock_waits(SWITCH_LOCK_TIMEOUT_MS)
                held_from = time.perf_counter()
                event_store.hold_appends()
                self.catch_up(projection)
                for table in tables:
                    recorder().switch_shadow(table, self.index_names[table])
        except BaseException:
            self.replayed = replayed  # the caught-up events were rolled back
            raise
        finally:
            if held_from is not None:
                self.longest_hold = max(self.longest_hold, time.perf_counter() - held_from)
        self.projections.remove(projection)
        self.tables = _tables(self.projections)
        self.event_types = _event_types(self.projections)
        _drop_copies(tables)  # the retired tables

    def drop(self) -> None:
        _drop_copies(self.tables)


def rebuild_online(
    projections: Sequence[Projection],
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
    lag: Lag | None = None,
    pace: float = 0.0,
) -> RebuildResult:
    """Rebuild the projections' read models beside the live ones while appends go on, then
    switch them in one projection at a time, each switch holding appends only for that
    projection's last events and the renames of its own tables. `pace`: see `_Copies.follow`.

    The live read models answer, unchanged, until their projection's switch; a failure or an
    interrupted run leaves every read model serving, rebuilt or not (the next run drops what
    this one left). Only projections are replayed: no subscriber sees an event again. Raises
    RebuildRefused when another rebuild or check of one of the projections runs.
    """
    batch_size = batch_size or int(settings.EVENTSTORE_BATCH_SIZE)
    check_pace(pace)
    started = time.perf_counter()
    most_attempts = 0
    with _rebuild_locks(projections):
        copies = _Copies(projections, batch_size, progress, lag, pace)
        try:
            for projection in projections:
                for attempt in range(1, SWITCH_ATTEMPTS + 1):
                    copies.follow()
                    try:
                        copies.switch(projection)
                        break
                    except OperationalError as error:
                        if not _lock_wait_ran_out(error) or attempt == SWITCH_ATTEMPTS:
                            raise
                most_attempts = max(most_attempts, attempt)
        finally:
            copies.drop()
    return RebuildResult(
        events=copies.replayed,
        seconds=time.perf_counter() - started,
        switches=len(projections),
        held_seconds=copies.longest_hold,
        switch_attempts=most_attempts,
    )


def _positions_seen(cursor: Any, connection: Any, after: LogPoint, event_types) -> list[int]:
    """The positions of the events after `after` (of these types) that `cursor`'s snapshot
    sees, in the order followers read the log in."""
    quote = connection.ops.quote_name
    table = quote(Event._meta.db_table)
    position = quote(Event._meta.get_field("position").column)
    transaction_id = quote(Event._meta.get_field("transaction_id").column)
    sql = f"SELECT {position} FROM {table} WHERE ({transaction_id}, {position}) > (%s, %s)"
    params: list[Any] = [after.transaction_id, after.position]
    if event_types is not None:
        event_type = quote(Event._meta.get_field("event_type").column)
        sql += f" AND {event_type} IN ({', '.join(['%s'] * len(event_types))})"
        params += list(event_types)
    cursor.execute(f"{sql} ORDER BY {transaction_id}, {position}", params)
    return [row[0] for row in cursor.fetchall()]


def verify_online(
    projections: Sequence[Projection],
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
    lag: Lag | None = None,
    pace: float = 0.0,
) -> tuple[list[RowDifference], RebuildResult]:
    """List every row that differs between the live read models and copies rebuilt beside
    them, while appends go on. The copies follow the log (`pace`: see `_Copies.follow`); then
    one snapshot (a connection of its own) gives the live rows and the events the copies still
    lack, which they replay, so both sides stand at the same point of the log. The copies are
    dropped at the end.

    Inside a transaction (which another connection cannot see into) it runs as `verify`,
    holding appends.
    """
    check_pace(pace)
    if transaction.get_connection().in_atomic_block:
        return verify(projections, batch_size=batch_size, progress=progress)
    batch_size = batch_size or int(settings.EVENTSTORE_BATCH_SIZE)
    started = time.perf_counter()
    differences: list[RowDifference] = []
    with _rebuild_locks(projections):
        copies = _Copies(projections, batch_size, progress, lag, pace)
        try:
            copies.follow()
            snapshot = connections.create_connection(DEFAULT_DB_ALIAS)
            try:
                with snapshot.cursor() as cursor:
                    recorder(snapshot).begin_snapshot(cursor)
                    positions = _positions_seen(cursor, snapshot, copies.point, copies.event_types)
                    live = {
                        (projection.name, model): _capture(projection, model, snapshot)
                        for projection in projections
                        for model in projection.models
                    }
                    cursor.execute("ROLLBACK")
            finally:
                snapshot.close()
            for start in range(0, len(positions), min(batch_size, 500)):
                chunk = positions[start : start + min(batch_size, 500)]
                copies.apply(recorder().read_positions(chunk))
            with _into_copies(copies.tables):
                for projection in projections:
                    for model in projection.models:
                        differences.extend(
                            _compare(projection, model, live[(projection.name, model)])
                        )
        finally:
            copies.drop()
    return differences, RebuildResult(events=copies.replayed, seconds=time.perf_counter() - started)

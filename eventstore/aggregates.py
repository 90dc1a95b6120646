"""Aggregates: domain objects whose state comes only from applying their own events.

A command method checks its rules against the current state and calls `record(...)`, which
applies the new event at once and queues it. `Repository.save` appends the queued events with
the version the aggregate was loaded at, so a concurrent change raises `ConcurrencyError`; wrap
the command handler in `retry_on_conflict` to reload and decide again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from eventstore.recorders import recorder
from eventstore.records import RecordedEvent
from eventstore.store import ConcurrencyError, EventStore, NewEvent, StreamAppend, as_json_data
from eventstore.store import event_store as default_store

Handler = Callable[[Any, dict[str, Any]], None]
A = TypeVar("A", bound="Aggregate")
R = TypeVar("R")


class AggregateNotFound(LookupError):
    """No stream exists for the requested aggregate."""


class UnknownEventError(Exception):
    """An aggregate was asked to apply an event type it has no handler for."""


def applies(event_type: str) -> Callable[[Handler], Handler]:
    """Mark an aggregate method as the handler that applies `event_type` to the state."""

    def decorate(method: Handler) -> Handler:
        method._applies_event_type = event_type  # type: ignore[attr-defined]
        return method

    return decorate


class Aggregate:
    """Base class. Subclasses set `aggregate_type`, initial state in `__init__`, and `@applies`
    handlers; bump `snapshot_version` whenever the shape of `snapshot()` changes."""

    aggregate_type: ClassVar[str]
    snapshot_version: ClassVar[int] = 1
    _appliers: ClassVar[dict[str, Handler]] = {}

    def __init__(self, aggregate_id: str) -> None:
        self.id = str(aggregate_id)
        self.version = 0
        self._pending: list[NewEvent] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers = dict(getattr(cls, "_appliers", {}))
        for attribute in vars(cls).values():
            event_type = getattr(attribute, "_applies_event_type", None)
            if event_type is not None:
                appliers[event_type] = attribute
        cls._appliers = appliers

    @property
    def pending_events(self) -> list[NewEvent]:
        """Events recorded since the aggregate was loaded or last saved."""
        return list(self._pending)

    @property
    def loaded_version(self) -> int:
        """The stream version the pending events will be appended after."""
        return self.version - len(self._pending)

    def record(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        event_id: uuid.UUID | None = None,
    ) -> None:
        """Apply a new event to the state and queue it for saving.

        Give a deterministic `event_id` (see `derived_event_id`) to make a retried command a
        no-op: the store never writes the same event id twice.
        """
        # Apply the payload as it will read back, so live state equals replayed state.
        payload = as_json_data(payload)
        self._apply(event_type, payload)
        self.version += 1
        self._pending.append(
            NewEvent(event_type, payload, dict(metadata or {}), event_id or uuid.uuid4())
        )

    def replay(self, event: RecordedEvent) -> None:
        """Apply a stored event of this aggregate's stream."""
        self.replay_payload(event.version, event.event_type, event.payload)

    def replay_payload(self, version: int, event_type: str, payload: dict[str, Any]) -> None:
        """Apply the stream's event number `version` from its type and (upcast) payload."""
        self._apply(event_type, payload)
        self.version = version

    def _apply(self, event_type: str, payload: dict[str, Any]) -> None:
        applier = self._appliers.get(event_type)
        if applier is None:
            raise UnknownEventError(f"{type(self).__name__} cannot apply {event_type}")
        applier(self, payload)

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready data; override when state holds non-JSON values."""
        return {
            name: value
            for name, value in vars(self).items()
            if not name.startswith("_") and name not in {"id", "version"}
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Set the state from `snapshot()` data; override together with `snapshot()`."""
        for name, value in state.items():
            setattr(self, name, value)

    def mark_saved(self) -> None:
        """Forget the pending events once they are stored."""
        self._pending.clear()


def load_together(*wanted: tuple[Repository[Any], str], use_snapshot: bool = True) -> list[Any]:
    """Each (repository, aggregate id) loaded as its `load_or_new` would, all in one query
    (of the first repository's store): a command that needs several aggregates (a saga and its
    order, a reservation and its products) reads them in one round trip."""
    if not wanted:
        return []
    loaded = wanted[0][0].store.read_for_load(
        *(repository._for_load(aggregate_id, use_snapshot) for repository, aggregate_id in wanted)
    )
    return [
        repository._built(str(aggregate_id), snapshot, events)
        for (repository, aggregate_id), (snapshot, events) in zip(wanted, loaded, strict=True)
    ]


EVENT_ID_NAMESPACE = uuid.UUID("5b0c2f6e-8f0a-4c1e-9a57-3d2f4c7b9e10")


def derived_event_id(*parts: str) -> uuid.UUID:
    """A UUID that is the same every time for the same parts (e.g. a stream and an idempotency
    key), so appending an event under it twice writes it once."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(str(part) for part in parts))


class Repository(Generic[A]):
    """Loads aggregates of one class from their streams (snapshot first) and saves new events."""

    def __init__(
        self,
        aggregate_class: type[A],
        *,
        store: EventStore | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        self.aggregate_class = aggregate_class
        self.store = store or default_store
        self._snapshot_every = snapshot_every

    @property
    def snapshot_every(self) -> int:
        """Take a snapshot each time a save crosses a multiple of this many events (0: never)."""
        if self._snapshot_every is not None:
            return self._snapshot_every
        return int(settings.EVENTSTORE_SNAPSHOT_EVERY)

    def new(self, aggregate_id: str) -> A:
        """A fresh aggregate at version 0 (its stream does not exist yet)."""
        return self.aggregate_class(aggregate_id)

    def load(
        self,
        aggregate_id: str,
        *,
        use_snapshot: bool = True,
        missing: type[Exception] | None = None,
    ) -> A:
        """Rebuild the aggregate from its snapshot (when there is one) and the later events.

        A stream that does not exist raises AggregateNotFound, or the service's own `missing`
        error saying "<Type> '<id>' does not exist".
        """
        aggregate = self.load_or_new(aggregate_id, use_snapshot=use_snapshot)
        if aggregate.version == 0:
            aggregate_type = self.aggregate_class.aggregate_type
            if missing is None:
                raise AggregateNotFound(f"{aggregate_type}/{aggregate_id}")
            raise missing(f"{aggregate_type.capitalize()} {aggregate_id!r} does not exist")
        return aggregate

    def load_or_new(self, aggregate_id: str, *, use_snapshot: bool = True) -> A:
        """Like `load`, but a missing stream gives a fresh aggregate instead of an error."""
        [aggregate] = load_together((self, aggregate_id), use_snapshot=use_snapshot)
        return aggregate

    def _for_load(self, aggregate_id: str, use_snapshot: bool) -> tuple[str, str, int | None]:
        """What the store reads to load this aggregate: its stream, and the snapshot format
        to look for (None: none)."""
        state_version = self.aggregate_class.snapshot_version
        return (
            self.aggregate_class.aggregate_type,
            str(aggregate_id),
            state_version if use_snapshot and self.snapshot_every else None,
        )

    def _built(
        self,
        aggregate_id: str,
        snapshot: tuple[int, Any] | None,
        events: list[tuple[int, str, dict[str, Any]]],
    ) -> A:
        aggregate = self.aggregate_class(aggregate_id)
        if snapshot is not None:
            aggregate.version, state = snapshot
            aggregate.restore(state)
        for version, event_type, payload in events:
            aggregate.replay_payload(version, event_type, payload)
        return aggregate

    def save(
        self, *aggregates: A, metadata: Mapping[str, Any] | None = None
    ) -> list[RecordedEvent]:
        """Append every aggregate's pending events in one transaction, each at its loaded version.

        `metadata` (correlation_id, causation_id, actor, ...) is added to every event.
        Raises ConcurrencyError, writing nothing, when any stream has moved on.
        """
        changed = [aggregate for aggregate in aggregates if aggregate._pending]
        if not changed:
            return []
        extra = dict(metadata or {})
        appends = [
            StreamAppend(
                aggregate.aggregate_type,
                aggregate.id,
                [
                    NewEvent(
                        event.event_type,
                        event.payload,
                        {**extra, **event.metadata},
                        event.event_id,
                        event.schema_version,
                    )
                    for event in aggregate._pending
                ],
                aggregate.loaded_version,
            )
            for aggregate in changed
        ]
        # Inside a caller's transaction the append's own savepoint is enough: a snapshot is a
        # cache, so events stored without one lose nothing.
        in_transaction = transaction.get_connection().in_atomic_block
        with contextlib.nullcontext() if in_transaction else transaction.atomic():
            recorded = self.store.append(*appends)
            self._take_snapshots(changed)
        for aggregate in changed:
            aggregate.mark_saved()
        return recorded

    def _take_snapshots(self, aggregates: list[A]) -> None:
        every = self.snapshot_every
        if not every:
            return
        due = [a for a in aggregates if a.version // every > a.loaded_version // every]
        if not due:
            return
        recorder().upsert_snapshots(
            [
                (
                    a.aggregate_type,
                    a.id,
                    a.version,
                    a.snapshot_version,
                    json.dumps(a.snapshot(), cls=DjangoJSONEncoder),
                )
                for a in due
            ]
        )


_units = threading.local()


def unit_of_work() -> contextlib.AbstractContextManager[Any]:
    """The transaction one command runs in: `transaction.atomic()`, except inside a batch a
    subscriber handles together (`joining_units`), whose transaction it joins without a
    savepoint. A command that fails there after it wrote anything marks the batch's
    transaction for rollback (the batch is then handled again event by event, each command in a
    savepoint of its own); one refused before it wrote leaves the batch as it was."""
    writes = getattr(_units, "writes", None)
    if writes is None:
        return transaction.atomic()
    return _joined(writes)


class _Writes:
    """Execute wrapper: counts the statements that may change something (all but SELECT)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip()[:6].upper() != "SELECT":
            self.count += 1
        return execute(sql, params, many, context)


@contextmanager
def _joined(writes: _Writes) -> Iterator[None]:
    before = writes.count
    try:
        yield
    except BaseException:
        if writes.count != before:
            transaction.set_rollback(True)
        raise


@contextmanager
def joining_units() -> Iterator[None]:
    """Within the block, in this thread, every `unit_of_work` joins the running transaction
    without a savepoint."""
    if getattr(_units, "writes", None) is not None:
        yield
        return
    _units.writes = writes = _Writes()
    try:
        with transaction.get_connection().execute_wrapper(writes):
            yield
    finally:
        _units.writes = None


def retry_on_conflict(
    function: Callable[..., R] | None = None, *, attempts: int | None = None
) -> Any:
    """Call a command handler again (it reloads and decides anew) after a ConcurrencyError.

    The first attempt is optimistic. Each later attempt runs in a transaction that first takes
    the appenders' lock (`EventStore.lock_appends`), so no writer can move a stream between its
    load and its append: a command on a hot stream cannot lose the race for ever. Gives up after
    `attempts` calls (default: the EVENTSTORE_COMMAND_RETRIES setting) and re-raises the last
    ConcurrencyError.

    A retry inside a caller's transaction keeps that transaction's id, older than the writer it
    lost to; the store raises its events' transaction ids to their streams' previous ones, so
    followers still read each stream in order (`PostgresRecorder._build_append_sql`). A
    transaction that can no longer commit (marked for rollback) is not retried in: the
    ConcurrencyError goes to whoever runs it.
    """

    def decorate(handler: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            limit = attempts or int(settings.EVENTSTORE_COMMAND_RETRIES)
            for attempt in range(1, limit + 1):
                try:
                    if attempt == 1:
                        return handler(*args, **kwargs)
                    with transaction.atomic():
                        default_store.lock_appends()
                        return handler(*args, **kwargs)
                except ConcurrencyError:
                    # A transaction marked for rollback (an append that wrote part of its rows,
                    # or a block joined without a savepoint) cannot decide again: whoever runs
                    # it starts over.
                    if attempt == limit or transaction.get_connection().needs_rollback:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapper

    return decorate(function) if function is not None else decorate

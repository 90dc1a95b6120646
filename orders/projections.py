"""Orders' read-model updaters, run inline in the appending transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from eventstore.api import Projection, RecordedEvent, rows
from orders import events
from orders.aggregates import LogChange, Order, Saga, SagaLog, SagaLogEntry, Waiting
from orders.models import SAGA_KINDS, CatalogProduct, OrderSummary, SagaSummary, saga_summary_id
from orders.saga import ENGINES

Status = OrderSummary.Status

# The order's status after each of its events, read off the aggregate's transition table: each
# event leads to one status, whichever it came from, but a cancellation request, which says in
# its payload where it left the order.
_STATUS_AFTER = {
    event_type: after
    for (_, event_type), after in Order.TRANSITIONS.items()
    if event_type != events.ORDER_CANCELLATION_REQUESTED
}


class OrderProjection(Projection):
    """One OrderSummary row per order: status, priced items and total."""

    name = "orders.orders"
    models = (OrderSummary,)
    aggregate_type = events.ORDER
    event_types = frozenset({*_STATUS_AFTER, events.ORDER_CANCELLATION_REQUESTED})

    def apply(self, event: RecordedEvent) -> None:
        self.apply_batch([event])

    def apply_batch(self, batch: Iterable[RecordedEvent]) -> None:
        """One write per order per batch: its events' changes are merged first (an order's
        payment, confirmation and completion arrive in one append)."""
        writes = rows.RowBatch(OrderSummary)
        for event in batch:
            if not self.handles(event):
                continue
            if event.event_type == events.ORDER_CREATED:
                writes.insert(event.aggregate_id, self._created(event))
            else:
                writes.change(event.aggregate_id, self._changes(event))
        writes.flush()

    @staticmethod
    def _created(event: RecordedEvent) -> dict[str, Any]:
        payload = event.payload
        return {
            "order_id": event.aggregate_id,
            "customer_id": payload["customer_id"],
            "status": Status.PENDING,
            "items": [{**item, "unit_price": None} for item in payload["items"]],
            "version": event.version,
            "created_at": event.recorded_at,
            "updated_at": event.recorded_at,
        }

    @staticmethod
    def _changes(event: RecordedEvent) -> dict[str, Any]:
        payload = event.payload
        changes: dict[str, Any] = {
            "status": payload.get("status") or _STATUS_AFTER[event.event_type],
            "version": event.version,
            "updated_at": event.recorded_at,
        }
        if event.event_type == events.ORDER_INVENTORY_RESERVED:
            changes.update(items=payload["items"], total_amount=payload["total_amount"])
        elif event.event_type == events.ORDER_CANCELLED:
            changes.update(cancel_reason=payload["reason"])
        elif event.event_type == events.ORDER_CANCELLATION_REQUESTED:
            changes.update(cancellation_note=payload["reason"])
        return changes


# The columns a saga's events change (all but its id, order, definition and start).
_SAGA_FIELDS = [
    "state",
    "current_step",
    "steps",
    "compensations",
    "waiting_kind",
    "waiting_for",
    "waiting_attempt",
    "waiting_since",
    "version",
    "updated_at",
]


# The events each kind of saga's row reads: the saga's own, and the requests its step tables
# send (the other events of its stream).
_SAGA_EVENT_TYPES = {
    kind: SagaLog.EVENT_TYPES | engine.requests for kind, engine in ENGINES.items()
}


class SagaProjection(Projection):
    """One SagaSummary row per saga (an order's fulfilment, and its cancellation): its state,
    step log and compensations, as the aggregate's SagaLog keeps them (each entry with its name
    and times), and the reply it waits for (with since when, for `expire_sagas`)."""

    name = "orders.sagas"
    models = (SagaSummary,)
    aggregate_type = frozenset(SAGA_KINDS)
    event_types = frozenset().union(*_SAGA_EVENT_TYPES.values())

    def apply(self, event: RecordedEvent) -> None:
        self.apply_batch([event])

    def apply_batch(self, batch: Iterable[RecordedEvent]) -> None:
        """Read each saga's row once per batch, apply its events in memory, write it once."""
        mine = [event for event in batch if self.handles(event)]
        if not mine:
            return

        def key_of(event: RecordedEvent) -> str:
            return saga_summary_id(event.aggregate_type, event.aggregate_id)

        started = {key_of(e) for e in mine if e.event_type == events.SAGA_STARTED}
        known = rows.in_bulk(SagaSummary, {key_of(e) for e in mine} - started)
        new: dict[str, SagaSummary] = {}
        changed: dict[str, SagaSummary] = {}
        for event in mine:
            key = key_of(event)
            if event.event_type == events.SAGA_STARTED:
                known[key] = new[key] = self._started(event)
                continue
            row = known.get(key)
            if row is None:
                # Only streams the Saga aggregate began (with SagaStarted) are sagas; a request
                # appended by other means (a service's own tests, a staff script) has no log.
                continue
            self._apply_to(row, event)
            if key not in new:
                changed[key] = row
        for row in new.values():
            rows.insert_instance(row)
        for row in changed.values():
            rows.update_instance(row, _SAGA_FIELDS)

    @staticmethod
    def _apply_to(row: SagaSummary, event: RecordedEvent) -> None:
        """The aggregate's rule moves the row's log (SagaLog.apply); the row adds the times."""
        row.version = event.version
        row.updated_at = event.recorded_at
        log = SagaLog(
            state=row.state,
            current_step=row.current_step,
            steps=_log_entries(row.steps),
            compensations=_log_entries(row.compensations),
        )
        change = log.apply(event.event_type, event.payload)
        row.state, row.current_step = log.state, log.current_step
        if change is not None:
            _record(row, change, event.recorded_at.isoformat())
        _set_waiting(row, log)

    @staticmethod
    def _started(event: RecordedEvent) -> SagaSummary:
        payload = event.payload
        return SagaSummary(
            saga_id=saga_summary_id(event.aggregate_type, event.aggregate_id),
            order_id=payload["order_id"],
            kind=SAGA_KINDS[event.aggregate_type],
            state=SagaSummary.State.RUNNING,
            definition_version=payload["definition_version"],
            steps=[_announced(name) for name in payload["steps"]],
            compensations=[],
            version=event.version,
            started_at=event.recorded_at,
            updated_at=event.recorded_at,
        )


# What a row's entry adds to the SagaLogEntry: its name and times.
_ROW_ONLY = ("name", "started_at", "requested_at", "finished_at")


def _announced(name: str) -> dict[str, Any]:
    """A step SagaStarted announced, not begun yet."""
    return {
        "name": name,
        "status": Saga.PENDING,
        "started_at": None,
        "finished_at": None,
        "error": "",
    }


def _log_entries(entries: list[dict[str, Any]]) -> dict[str, SagaLogEntry]:
    """A row's steps or compensations as the SagaLog keeps them: those begun, by name."""
    return {
        entry["name"]: {key: value for key, value in entry.items() if key not in _ROW_ONLY}
        for entry in entries
        if entry["status"] != Saga.PENDING
    }


def _record(row: SagaSummary, change: LogChange, at: str) -> None:
    """Write the entry `change` names into the row, with its times: a step is started at its
    (latest) request, a compensation at its first and requested at its latest; either finishes
    when it succeeds or fails (a local step starts as it finishes)."""
    entries = row.steps if change.log == Waiting.STEP else row.compensations
    index = next((i for i, entry in enumerate(entries) if entry["name"] == change.name), None)
    before = entries[index] if index is not None else {}
    times: dict[str, Any] = {"started_at": before.get("started_at") or at, "finished_at": at}
    if change.entry["status"] == Saga.STARTED:
        times["finished_at"] = None
        if change.log == Waiting.STEP:
            times["started_at"] = at
        else:
            times["requested_at"] = at
    elif "requested_at" in before:
        times["requested_at"] = before["requested_at"]
    entry = {"name": change.name, **change.entry, **times}
    if index is None:
        entries.append(entry)
    else:
        entries[index] = entry


def _set_waiting(row: SagaSummary, log: SagaLog) -> None:
    """Record the reply the saga waits for longest (`SagaLog.waiting_for`), and since when: its
    step's start or the compensation's last request."""
    waiting = log.waiting_for()
    if waiting is None:
        row.waiting_kind, row.waiting_for, row.waiting_attempt, row.waiting_since = "", "", 0, None
        return
    entries = row.steps if waiting.kind == Waiting.STEP else row.compensations
    entry = next(entry for entry in entries if entry["name"] == waiting.name)
    since = entry["started_at"] if waiting.kind == Waiting.STEP else entry["requested_at"]
    row.waiting_kind, row.waiting_for = waiting.kind, waiting.name
    row.waiting_attempt = waiting.attempt
    row.waiting_since = datetime.fromisoformat(since)


class CatalogProjection(Projection):
    """The products an order may name, from inventory's ProductCreated events, with the name
    of its latest ProductRenamed."""

    name = "orders.catalog"
    models = (CatalogProduct,)
    event_types = frozenset({events.PRODUCT_CREATED, events.PRODUCT_RENAMED})

    def apply(self, event: RecordedEvent) -> None:
        if event.event_type == events.PRODUCT_RENAMED:
            rows.update(CatalogProduct, event.payload["product_id"], name=event.payload["name"])
            return
        rows.upsert(
            CatalogProduct,
            product_id=event.payload["product_id"],
            name=event.payload["name"],
            created_at=event.recorded_at,
        )

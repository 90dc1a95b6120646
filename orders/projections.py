"""Orders' read-model updaters, run inline in the appending transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from eventstore.api import Projection, RecordedEvent, rows
from orders import events
from orders.aggregates import (
    Cancellation,
    Order,
    Saga,
    Waiting,
    saga_state_after,
    saga_waiting_for,
)
from orders.models import (
    SAGA_CLASSES,
    SAGA_KINDS,
    CatalogProduct,
    OrderSummary,
    SagaSummary,
    saga_summary_id,
)

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


class SagaProjection(Projection):
    """One SagaSummary row per saga (an order's fulfilment, and its cancellation): its state,
    step log, compensations and the reply it waits for (with since when, for `expire_sagas`)."""

    name = "orders.sagas"
    models = (SagaSummary,)
    aggregate_type = frozenset(SAGA_KINDS)
    event_types = Saga.EVENT_TYPES | Cancellation.EVENT_TYPES

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
        row.version = event.version
        row.updated_at = event.recorded_at
        saga_class = SAGA_CLASSES[row.kind]
        if not _names_what_it_starts(event, saga_class):
            return
        at = event.recorded_at.isoformat()
        payload = event.payload
        kind = event.event_type
        if kind in saga_class.STEP_REQUESTS:
            step = _entry(row.steps, payload["step"])
            step.update(status=Saga.STARTED, started_at=at, finished_at=None, error="")
            if "attempt" in payload:  # a retried step's
                step["attempts"] = payload["attempt"]
            row.current_step = payload["step"]
        elif kind == events.SAGA_STEP_STALLED:
            _entry(row.steps, payload["step"]).update(
                status=Saga.FAILED, finished_at=at, error=payload["error"]
            )
        elif kind in saga_class.COMPENSATION_REQUESTS:
            _compensation(row.compensations, payload["compensation"], at).update(
                status=Saga.STARTED,
                attempts=payload["attempt"],
                requested_at=at,
                finished_at=None,
                error="",
            )
        elif kind in (events.SAGA_STEP_SUCCEEDED, events.SAGA_STEP_FAILED):
            step = _entry(row.steps, payload["step"])
            step.update(
                status=Saga.FAILED if kind == events.SAGA_STEP_FAILED else Saga.SUCCEEDED,
                started_at=step["started_at"] or at,
                finished_at=at,
                error=payload["error"],
            )
            row.current_step = payload["step"]
        elif kind in (events.SAGA_COMPENSATION_SUCCEEDED, events.SAGA_COMPENSATION_FAILED):
            _compensation(row.compensations, payload["compensation"], at).update(
                status=Saga.FAILED if kind == events.SAGA_COMPENSATION_FAILED else Saga.SUCCEEDED,
                finished_at=at,
                error=payload["error"],
            )
        elif kind == events.SAGA_COMPLETED:
            row.current_step = ""
        row.state = saga_state_after(
            row.state, kind, [entry["status"] for entry in row.compensations], kind=saga_class
        )
        _set_waiting(row)

    @staticmethod
    def _started(event: RecordedEvent) -> SagaSummary:
        payload = event.payload
        return SagaSummary(
            saga_id=saga_summary_id(event.aggregate_type, event.aggregate_id),
            order_id=payload["order_id"],
            kind=SAGA_KINDS[event.aggregate_type],
            state=SagaSummary.State.RUNNING,
            definition_version=payload["definition_version"],
            steps=[
                {
                    "name": name,
                    "status": "pending",
                    "started_at": None,
                    "finished_at": None,
                    "error": "",
                }
                for name in payload["steps"]
            ],
            compensations=[],
            version=event.version,
            started_at=event.recorded_at,
            updated_at=event.recorded_at,
        )


def _names_what_it_starts(event: RecordedEvent, saga_class: type[Saga]) -> bool:
    """Whether a request names the step, or the compensation and attempt, it starts (one that
    was appended by other means, e.g. a staff script, may not: the log cannot place it)."""
    if event.event_type in saga_class.STEP_REQUESTS:
        return "step" in event.payload
    if event.event_type in saga_class.COMPENSATION_REQUESTS:
        return "compensation" in event.payload and "attempt" in event.payload
    return True


def _entry(entries: list[dict[str, Any]], name: str, **new: Any) -> dict[str, Any]:
    """The step or compensation entry called `name`; a new one (with `new` fields) if absent."""
    for entry in entries:
        if entry["name"] == name:
            return entry
    entry = {
        "name": name,
        "status": "pending",
        "started_at": None,
        "finished_at": None,
        "error": "",
        **new,
    }
    entries.append(entry)
    return entry


def _compensation(entries: list[dict[str, Any]], name: str, at: str) -> dict[str, Any]:
    """A compensation's entry; a first request starts it at `at`."""
    return _entry(entries, name, status="started", attempts=0, started_at=at, requested_at=at)


def _set_waiting(row: SagaSummary) -> None:
    """Record the reply the saga waits for longest, as `Saga.waiting_for` decides it, and since
    when: its step's start or the compensation's last request."""
    current = next((step for step in row.steps if step["name"] == row.current_step), {})
    waiting = saga_waiting_for(
        state=row.state,
        current_step=row.current_step,
        current_status=current.get("status", ""),
        current_attempt=current.get("attempts", 0),
        compensations=[
            (entry["name"], entry["status"], entry["attempts"]) for entry in row.compensations
        ],
    )
    if waiting is None:
        row.waiting_kind, row.waiting_for, row.waiting_attempt, row.waiting_since = "", "", 0, None
        return
    if waiting.kind == Waiting.STEP:
        since = current["started_at"]
    else:
        since = _entry(row.compensations, waiting.name)["requested_at"]
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

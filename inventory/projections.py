"""Inventory's read-model updaters, run inline in the appending transaction."""

from collections.abc import Iterable

from eventstore.api import Projection, RecordedEvent, rows
from inventory import events
from inventory.models import ProductStock, ReservationSummary

# How each stock event moves units between the counters of ProductStock.
_STOCK_MOVES = {
    events.STOCK_ADDED: {"received_stock": 1, "available_stock": 1},
    events.STOCK_ADJUSTED: {"adjusted_stock": 1, "available_stock": 1},
    events.STOCK_RESERVED: {"available_stock": -1, "reserved_stock": 1},
    events.STOCK_RELEASED: {"reserved_stock": -1, "available_stock": 1},
    events.STOCK_SOLD: {"reserved_stock": -1, "sold_stock": 1},
    events.STOCK_RETURNED: {"sold_stock": -1, "available_stock": 1},
}

# The column each catalogue event sets, and the value it sets it to.
_CATALOGUE_CHANGES = {
    events.PRODUCT_PRICE_CHANGED: lambda payload: {"price": payload["price"]},
    events.PRODUCT_RENAMED: lambda payload: {"name": payload["name"]},
    events.PRODUCT_DISCONTINUED: lambda payload: {"status": ProductStock.Status.DISCONTINUED},
    events.PRODUCT_RESTORED: lambda payload: {"status": ProductStock.Status.ACTIVE},
}


class ProductStockProjection(Projection):
    """One ProductStock row per product: name, price, status and the stock counters."""

    name = "inventory.products"
    models = (ProductStock,)
    event_types = frozenset({events.PRODUCT_CREATED, *_CATALOGUE_CHANGES, *_STOCK_MOVES})

    def apply(self, event: RecordedEvent) -> None:
        self.apply_batch([event])

    def apply_batch(self, batch: Iterable[RecordedEvent]) -> None:
        """One write per product per batch: the products a reservation takes stock from move in
        one append, and are updated in one statement."""
        writes = rows.RowBatch(ProductStock)
        for event in batch:
            if not self.handles(event):
                continue
            payload = event.payload
            if event.event_type == events.PRODUCT_CREATED:
                writes.insert(
                    event.aggregate_id,
                    {
                        "product_id": event.aggregate_id,
                        "name": payload["name"],
                        "price": payload["price"],
                        "version": event.version,
                        "created_at": event.recorded_at,
                        "updated_at": event.recorded_at,
                    },
                )
                continue
            if event.event_type in _CATALOGUE_CHANGES:
                writes.change(
                    event.aggregate_id,
                    {
                        **_CATALOGUE_CHANGES[event.event_type](payload),
                        "version": event.version,
                        "updated_at": event.recorded_at,
                    },
                )
                continue
            quantity = payload["quantity"]
            writes.change(
                event.aggregate_id,
                {"version": event.version, "updated_at": event.recorded_at},
                add={
                    counter: sign * quantity
                    for counter, sign in _STOCK_MOVES[event.event_type].items()
                },
            )
        writes.flush()


class ReservationProjection(Projection):
    """One ReservationSummary row per reservation: its status, lines and failure details."""

    name = "inventory.reservations"
    models = (ReservationSummary,)
    event_types = frozenset(
        {
            events.INVENTORY_RESERVED,
            events.INVENTORY_RESERVATION_FAILED,
            events.INVENTORY_RELEASED,
            events.INVENTORY_COMMITTED,
            events.INVENTORY_RETURNED,
        }
    )
    _statuses = {
        events.INVENTORY_RESERVED: ReservationSummary.Status.RESERVED,
        events.INVENTORY_RESERVATION_FAILED: ReservationSummary.Status.FAILED,
        events.INVENTORY_RELEASED: ReservationSummary.Status.RELEASED,
        events.INVENTORY_COMMITTED: ReservationSummary.Status.COMMITTED,
        events.INVENTORY_RETURNED: ReservationSummary.Status.RETURNED,
    }

    def apply(self, event: RecordedEvent) -> None:
        payload = event.payload
        changes = {"status": self._statuses[event.event_type], "updated_at": event.recorded_at}
        if event.event_type == events.INVENTORY_RESERVED:
            changes.update(lines=payload["lines"], total_amount=payload["total_amount"])
        elif event.event_type == events.INVENTORY_RESERVATION_FAILED:
            changes.update(reason=payload["reason"], details=payload["details"])
        if event.version == 1:  # the reservation's first event (a release may come first)
            rows.insert(
                ReservationSummary,
                reservation_id=event.aggregate_id,
                created_at=event.recorded_at,
                **changes,
            )
        else:
            rows.update(ReservationSummary, event.aggregate_id, **changes)

"""Product and Reservation: inventory state rebuilt only from events.

For every product at every version: available + reserved + sold == received, none negative.
A reservation goes from new to reserved or failed; a reserved one ends released or committed,
and a committed one may be returned (its sold units back to available).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from eventstore.aggregates import Aggregate, applies
from inventory import events


class InventoryError(Exception):
    """A command the inventory refuses; nothing was written."""


class ProductAlreadyExists(InventoryError):
    """A product with this id was created before."""


class ProductNotFound(InventoryError):
    """No product has this id."""


class InsufficientStock(InventoryError):
    """Fewer units are available than requested."""


class ReservationNotFound(InventoryError):
    """No reservation has this id."""


class ReservationStateError(InventoryError):
    """The reservation is not in a state that allows the command."""


class Product(Aggregate):
    """A product's price and stock: received units are available, reserved or sold."""

    aggregate_type = events.PRODUCT

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.name = ""
        self.price = "0.00"
        self.available = 0
        self.reserved = 0
        self.sold = 0
        self.received = 0

    @property
    def exists(self) -> bool:
        return self.version > 0

    # --- commands ------------------------------------------------------------------------------

    def create(self, *, name: str, price: Decimal, initial_stock: int) -> None:
        """Create the product, with its first stock when `initial_stock` > 0."""
        if self.exists:
            raise ProductAlreadyExists(f"Product {self.id!r} already exists")
        if price <= 0:
            raise InventoryError("price must be greater than 0")
        self.record(
            events.PRODUCT_CREATED,
            {"product_id": self.id, "name": name, "price": f"{price:.2f}"},
        )
        if initial_stock:
            self.add_stock(quantity=initial_stock)

    def add_stock(
        self, *, quantity: int, idempotency_key: str = "", event_id: uuid.UUID | None = None
    ) -> None:
        """Receive `quantity` units: they become available."""
        self._require_quantity(quantity)
        self.record(
            events.STOCK_ADDED,
            {"product_id": self.id, "quantity": quantity, "idempotency_key": idempotency_key},
            event_id=event_id,
        )

    def reserve(self, *, reservation_id: str, quantity: int) -> None:
        """Move `quantity` units from available to reserved; InsufficientStock when short."""
        self._require_quantity(quantity)
        if quantity > self.available:
            raise InsufficientStock(f"{self.id}: requested {quantity}, available {self.available}")
        self.record(events.STOCK_RESERVED, self._moved(reservation_id, quantity))

    def release(self, *, reservation_id: str, quantity: int) -> None:
        """Move `quantity` reserved units back to available."""
        self._require_reserved(quantity)
        self.record(events.STOCK_RELEASED, self._moved(reservation_id, quantity))

    def sell(self, *, reservation_id: str, quantity: int) -> None:
        """Move `quantity` reserved units to sold."""
        self._require_reserved(quantity)
        self.record(events.STOCK_SOLD, self._moved(reservation_id, quantity))

    def return_sold(self, *, reservation_id: str, quantity: int) -> None:
        """Move `quantity` sold units back to available (a cancelled order's)."""
        self._require_quantity(quantity)
        if quantity > self.sold:
            raise InventoryError(f"{self.id}: {quantity} units were not sold")
        self.record(events.STOCK_RETURNED, self._moved(reservation_id, quantity))

    def _moved(self, reservation_id: str, quantity: int) -> dict[str, Any]:
        return {"product_id": self.id, "reservation_id": reservation_id, "quantity": quantity}

    def _require_quantity(self, quantity: int) -> None:
        if not self.exists:
            raise ProductNotFound(f"Product {self.id!r} does not exist")
        if quantity <= 0:
            raise InventoryError("quantity must be greater than 0")

    def _require_reserved(self, quantity: int) -> None:
        self._require_quantity(quantity)
        if quantity > self.reserved:
            raise InventoryError(f"{self.id}: {quantity} units are not reserved")

    # --- state ---------------------------------------------------------------------------------

    @applies(events.PRODUCT_CREATED)
    def _created(self, payload: dict[str, Any]) -> None:
        self.name = payload["name"]
        self.price = payload["price"]

    @applies(events.STOCK_ADDED)
    def _stock_added(self, payload: dict[str, Any]) -> None:
        self.available += payload["quantity"]
        self.received += payload["quantity"]

    @applies(events.STOCK_RESERVED)
    def _stock_reserved(self, payload: dict[str, Any]) -> None:
        self.available -= payload["quantity"]
        self.reserved += payload["quantity"]

    @applies(events.STOCK_RELEASED)
    def _stock_released(self, payload: dict[str, Any]) -> None:
        self.reserved -= payload["quantity"]
        self.available += payload["quantity"]

    @applies(events.STOCK_SOLD)
    def _stock_sold(self, payload: dict[str, Any]) -> None:
        self.reserved -= payload["quantity"]
        self.sold += payload["quantity"]

    @applies(events.STOCK_RETURNED)
    def _stock_returned(self, payload: dict[str, Any]) -> None:
        self.sold -= payload["quantity"]
        self.available += payload["quantity"]


class Reservation(Aggregate):
    """Units held for one order, all lines or none: new -> reserved | failed;
    reserved -> released | committed; committed -> returned."""

    aggregate_type = events.RESERVATION

    NEW = ""
    RESERVED = "reserved"
    FAILED = "failed"
    RELEASED = "released"
    COMMITTED = "committed"
    RETURNED = "returned"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = self.NEW
        self.lines: list[dict[str, Any]] = []
        self.total_amount = "0.00"
        self.reason = ""
        self.details: list[dict[str, Any]] = []

    @property
    def held_lines(self) -> list[dict[str, Any]]:
        """Each line's product and quantity, without its price."""
        return [
            {"product_id": line["product_id"], "quantity": line["quantity"]} for line in self.lines
        ]

    def reserved(self, *, lines: list[dict[str, Any]]) -> None:
        """Record that every line's units are held, at each line's unit price."""
        self._require(self.NEW)
        total = sum((Decimal(line["unit_price"]) * line["quantity"] for line in lines), Decimal(0))
        self.record(
            events.INVENTORY_RESERVED,
            {"reservation_id": self.id, "lines": lines, "total_amount": f"{total:.2f}"},
        )

    def failed(self, *, reason: str, details: list[dict[str, Any]]) -> None:
        """Record that nothing was reserved, and why."""
        self._require(self.NEW)
        self.record(
            events.INVENTORY_RESERVATION_FAILED,
            {"reservation_id": self.id, "reason": reason, "details": details},
        )

    def released(self) -> None:
        """Record that the held units went back to available (none when the reservation was new)."""
        self._require(self.NEW, self.RESERVED)
        self.record(
            events.INVENTORY_RELEASED,
            {"reservation_id": self.id, "lines": self.held_lines},
        )

    def committed(self) -> None:
        """Record that the held units were sold."""
        self._require(self.RESERVED)
        self.record(
            events.INVENTORY_COMMITTED,
            {"reservation_id": self.id, "lines": self.held_lines},
        )

    def returned(self) -> None:
        """Record that the sold units went back to available."""
        self._require(self.COMMITTED)
        self.record(
            events.INVENTORY_RETURNED,
            {"reservation_id": self.id, "lines": self.held_lines},
        )

    def _require(self, *statuses: str) -> None:
        if self.status not in statuses:
            raise ReservationStateError(
                f"Reservation {self.id!r} is {self.status or 'new'}; "
                f"this needs it {' or '.join(s or 'new' for s in statuses)}"
            )

    @applies(events.INVENTORY_RESERVED)
    def _reserved(self, payload: dict[str, Any]) -> None:
        self.status = self.RESERVED
        self.lines = payload["lines"]
        self.total_amount = payload["total_amount"]

    @applies(events.INVENTORY_RESERVATION_FAILED)
    def _failed(self, payload: dict[str, Any]) -> None:
        self.status = self.FAILED
        self.reason = payload["reason"]
        self.details = payload["details"]

    @applies(events.INVENTORY_RELEASED)
    def _released(self, payload: dict[str, Any]) -> None:
        self.status = self.RELEASED

    @applies(events.INVENTORY_COMMITTED)
    def _committed(self, payload: dict[str, Any]) -> None:
        self.status = self.COMMITTED

    @applies(events.INVENTORY_RETURNED)
    def _returned(self, payload: dict[str, Any]) -> None:
        self.status = self.RETURNED

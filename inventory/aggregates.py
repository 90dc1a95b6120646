"""Product and Reservation: inventory state rebuilt only from events.

For every product at every version: available + reserved + sold == received + adjusted (the net
of staff's stock corrections), none negative. A discontinued product keeps its stock and
reservations but takes no new one.
A reservation goes from new to reserved or failed; a reserved one ends released or committed,
and a committed one may be returned (its sold units back to available).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from eventstore.api import Aggregate, applies
from inventory import events


class InventoryError(Exception):
    """A command the inventory refuses; nothing was written."""


class ProductAlreadyExists(InventoryError):
    """A product with this id was created before."""


class ProductNotFound(InventoryError):
    """No product has this id."""


class InsufficientStock(InventoryError):
    """Fewer units are available than requested."""


class ProductDiscontinued(InventoryError):
    """The product is discontinued: it takes no new reservation."""


class AdjustmentPastZero(InventoryError):
    """A stock correction would take more units than are available."""


class ReservationNotFound(InventoryError):
    """No reservation has this id."""


class ReservationStateError(InventoryError):
    """The reservation is not in a state that allows the command."""


class Product(Aggregate):
    """A product's name, price, status and stock: units received, plus staff's corrections, are
    available, reserved or sold."""

    aggregate_type = events.PRODUCT
    snapshot_version = 2  # 2: `discontinued` and `adjusted`

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.name = ""
        self.price = "0.00"
        self.discontinued = False
        self.available = 0
        self.reserved = 0
        self.sold = 0
        self.received = 0
        self.adjusted = 0

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def available_for_sale(self) -> int:
        """Units a new reservation may take: none once the product is discontinued."""
        return 0 if self.discontinued else self.available

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

    def change_price(self, *, price: Decimal, reason: str = "") -> None:
        """Set a new price for reservations to come (those made keep theirs); the same price
        records nothing."""
        self._require_exists()
        if price <= 0:
            raise InventoryError("price must be greater than 0")
        if price == Decimal(self.price):
            return
        self.record(
            events.PRODUCT_PRICE_CHANGED,
            {
                "product_id": self.id,
                "price": f"{price:.2f}",
                "previous_price": self.price,
                "reason": reason,
            },
        )

    def rename(self, *, name: str, reason: str = "") -> None:
        """Correct the product's name; the same name records nothing."""
        self._require_exists()
        name = name.strip()
        if not name:
            raise InventoryError("name must not be blank")
        if name == self.name:
            return
        self.record(
            events.PRODUCT_RENAMED,
            {"product_id": self.id, "name": name, "previous_name": self.name, "reason": reason},
        )

    def discontinue(self, *, reason: str = "") -> None:
        """Withdraw the product from sale: new reservations are refused, stock and reservations
        already made stay as they are. A discontinued product records nothing."""
        self._require_exists()
        if not self.discontinued:
            self.record(events.PRODUCT_DISCONTINUED, {"product_id": self.id, "reason": reason})

    def reinstate(self, *, reason: str = "") -> None:
        """Put a discontinued product back on sale; one on sale records nothing."""
        self._require_exists()
        if self.discontinued:
            self.record(events.PRODUCT_RESTORED, {"product_id": self.id, "reason": reason})

    def adjust_stock(
        self,
        *,
        quantity: int,
        reason: str,
        note: str = "",
        idempotency_key: str = "",
        event_id: uuid.UUID | None = None,
    ) -> None:
        """Correct the available units by `quantity` (signed, not 0) for `reason`: never below
        zero (AdjustmentPastZero), never touching reserved or sold units."""
        self._require_exists()
        if quantity == 0:
            raise InventoryError("quantity must not be 0")
        if reason not in events.ADJUSTMENT_REASONS:
            raise InventoryError(f"reason must be one of {', '.join(events.ADJUSTMENT_REASONS)}")
        if self.available + quantity < 0:
            raise AdjustmentPastZero(
                f"{self.id}: cannot remove {-quantity} units, {self.available} available"
            )
        self.record(
            events.STOCK_ADJUSTED,
            {
                "product_id": self.id,
                "quantity": quantity,
                "reason": reason,
                "note": note,
                "idempotency_key": idempotency_key,
            },
            event_id=event_id,
        )

    def reserve(self, *, reservation_id: str, quantity: int) -> None:
        """Move `quantity` units from available to reserved; InsufficientStock when short,
        ProductDiscontinued when the product is discontinued."""
        self._require_quantity(quantity)
        if self.discontinued:
            raise ProductDiscontinued(f"{self.id} is discontinued")
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

    def _require_exists(self) -> None:
        if not self.exists:
            raise ProductNotFound(f"Product {self.id!r} does not exist")

    def _require_quantity(self, quantity: int) -> None:
        self._require_exists()
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

    @applies(events.PRODUCT_PRICE_CHANGED)
    def _price_changed(self, payload: dict[str, Any]) -> None:
        self.price = payload["price"]

    @applies(events.PRODUCT_RENAMED)
    def _renamed(self, payload: dict[str, Any]) -> None:
        self.name = payload["name"]

    @applies(events.PRODUCT_DISCONTINUED)
    def _discontinued(self, payload: dict[str, Any]) -> None:
        self.discontinued = True

    @applies(events.PRODUCT_RESTORED)
    def _restored(self, payload: dict[str, Any]) -> None:
        self.discontinued = False

    @applies(events.STOCK_ADDED)
    def _stock_added(self, payload: dict[str, Any]) -> None:
        self.available += payload["quantity"]
        self.received += payload["quantity"]

    @applies(events.STOCK_ADJUSTED)
    def _stock_adjusted(self, payload: dict[str, Any]) -> None:
        self.available += payload["quantity"]
        self.adjusted += payload["quantity"]

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

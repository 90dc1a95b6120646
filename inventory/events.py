"""Inventory's event types and payloads: its public contract (ARCHITECTURE.md, event catalog).

Quantities are integers and prices decimal strings with two places ("12.50"). A reservation's
id is the order's id when the order saga asks for it.
"""

from typing import TypedDict

# Aggregate types (stream names).
PRODUCT = "product"
RESERVATION = "reservation"

# Emitted on a product's stream.
PRODUCT_CREATED = "ProductCreated"
STOCK_ADDED = "StockAdded"
STOCK_RESERVED = "StockReserved"
STOCK_RELEASED = "StockReleased"
STOCK_SOLD = "StockSold"

# Emitted on a reservation's stream: the replies the order saga waits for.
INVENTORY_RESERVED = "InventoryReserved"
INVENTORY_RESERVATION_FAILED = "InventoryReservationFailed"
INVENTORY_RELEASED = "InventoryReleased"
INVENTORY_COMMITTED = "InventoryCommitted"

# Consumed: requests from the order saga and the order's completion.
INVENTORY_RESERVATION_REQUESTED = "InventoryReservationRequested"
INVENTORY_RELEASE_REQUESTED = "InventoryReleaseRequested"
ORDER_COMPLETED = "OrderCompleted"


class ProductCreatedPayload(TypedDict):
    product_id: str
    name: str
    price: str


class StockAddedPayload(TypedDict):
    product_id: str
    quantity: int
    idempotency_key: str  # "" when the restock had none


class StockMovedPayload(TypedDict):
    """StockReserved, StockReleased and StockSold: units moved for one reservation."""

    product_id: str
    reservation_id: str
    quantity: int


class ReservedLine(TypedDict):
    product_id: str
    quantity: int
    unit_price: str


class ShortLine(TypedDict):
    product_id: str
    requested: int
    available: int


class HeldLine(TypedDict):
    product_id: str
    quantity: int


class InventoryReservedPayload(TypedDict):
    reservation_id: str
    lines: list[ReservedLine]
    total_amount: str


class InventoryReservationFailedPayload(TypedDict):
    reservation_id: str
    reason: str  # "insufficient_stock" or "unknown_product"
    details: list[ShortLine]


class InventoryReleasedPayload(TypedDict):
    """Also InventoryCommittedPayload: the lines released (back to available) or sold."""

    reservation_id: str
    lines: list[HeldLine]


InventoryCommittedPayload = InventoryReleasedPayload


class InventoryReservationRequestedPayload(TypedDict):
    order_id: str
    items: list[HeldLine]


class InventoryReleaseRequestedPayload(TypedDict):
    order_id: str


class OrderCompletedPayload(TypedDict):
    """The fields inventory reads; the order event carries more."""

    order_id: str

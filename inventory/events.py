"""Inventory's event types: its public contract, with their payloads in docs/EVENTS.md.

Quantities are integers and prices decimal strings with two places ("12.50"). A reservation's
id is the order's id when the order saga asks for it.
"""

# Aggregate types (stream names).
PRODUCT = "product"
RESERVATION = "reservation"

# Emitted on a product's stream.
PRODUCT_CREATED = "ProductCreated"
STOCK_ADDED = "StockAdded"
STOCK_RESERVED = "StockReserved"
STOCK_RELEASED = "StockReleased"
STOCK_SOLD = "StockSold"
# Sold units back to available: the order they were sold to was cancelled and refunded.
STOCK_RETURNED = "StockReturned"

# Emitted on a reservation's stream: the replies the order saga waits for.
INVENTORY_RESERVED = "InventoryReserved"
INVENTORY_RESERVATION_FAILED = "InventoryReservationFailed"
INVENTORY_RELEASED = "InventoryReleased"
INVENTORY_COMMITTED = "InventoryCommitted"
INVENTORY_RETURNED = "InventoryReturned"

# Consumed: requests from the order saga and the order's completion.
INVENTORY_RESERVATION_REQUESTED = "InventoryReservationRequested"
INVENTORY_RELEASE_REQUESTED = "InventoryReleaseRequested"
INVENTORY_RETURN_REQUESTED = "InventoryReturnRequested"
ORDER_COMPLETED = "OrderCompleted"

"""Inventory's reactions to the order sagas' requests and to completed orders.

One checkpointed subscriber, so each request takes effect once; the services are idempotent
by reservation id (= order id) as a second line of defence.
"""

import logging

from eventstore.api import RecordedEvent, Subscriber
from inventory import events
from inventory.aggregates import InventoryError
from inventory.services import stock_commit, stock_release, stock_reserve, stock_return

logger = logging.getLogger(__name__)

ACTOR = "service:inventory"


class InventoryRequestHandler(Subscriber):
    """Reserves, releases, commits and returns stock as the order sagas ask."""

    name = "inventory.requests"
    event_types = frozenset(
        {
            events.INVENTORY_RESERVATION_REQUESTED,
            events.INVENTORY_RELEASE_REQUESTED,
            events.INVENTORY_RETURN_REQUESTED,
            events.ORDER_COMPLETED,
        }
    )

    def handle(self, event: RecordedEvent) -> None:
        metadata = event.caused_metadata(ACTOR)
        order_id = event.payload["order_id"]
        try:
            if event.event_type == events.INVENTORY_RESERVATION_REQUESTED:
                stock_reserve(
                    reservation_id=order_id, items=event.payload["items"], metadata=metadata
                )
            elif event.event_type == events.INVENTORY_RELEASE_REQUESTED:
                stock_release(reservation_id=order_id, missing_ok=True, metadata=metadata)
            elif event.event_type == events.INVENTORY_RETURN_REQUESTED:
                stock_return(reservation_id=order_id, metadata=metadata)
            else:
                stock_commit(reservation_id=order_id, metadata=metadata)
        except InventoryError:
            # A request the inventory refuses (a malformed line, committing a released
            # reservation) is refused again on every retry: it is logged for staff rather than
            # left to block every later request behind it.
            logger.exception("%s for order %s refused", event.event_type, order_id)

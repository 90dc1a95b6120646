"""What the inventory service suites read back: an order line, and a stream's event types."""

from inventory import events


def types_of(store, aggregate_type, aggregate_id):
    """The event types of one stream, in version order."""
    return [event.event_type for event in store.read_stream(aggregate_type, aggregate_id)]


def product_types(store, product_id="p1"):
    """The event types of a product's stream."""
    return types_of(store, events.PRODUCT, product_id)


def reservation_types(store, reservation_id="r1"):
    """The event types of a reservation's stream."""
    return types_of(store, events.RESERVATION, reservation_id)


def line(product_id, quantity):
    """A line of a reservation request, as the order saga sends it."""
    return {"product_id": product_id, "quantity": quantity}

"""InventoryRequestHandler: the saga's requests and completed orders take effect once."""

import logging
import uuid

import pytest

from eventstore.follower.subscriptions import catch_up, get_subscribers
from eventstore.models import Checkpoint, Event
from eventstore.store import NewEvent, event_store
from inventory import events
from inventory.handlers import ACTOR, InventoryRequestHandler

pytestmark = pytest.mark.django_db


@pytest.fixture
def handler():
    """The handler as apps.ready() registered it."""
    [subscriber] = get_subscribers(["inventory.requests"])
    assert isinstance(subscriber, InventoryRequestHandler)
    return subscriber


def request(event_type, order_id, **payload):
    """Append one event of the order saga's, correlated with the order, to its stream."""
    [recorded] = event_store.append_to_stream(
        "saga",
        order_id,
        [NewEvent(event_type, {"order_id": order_id, **payload}, {"correlation_id": order_id})],
    )
    return recorded


def reservation_requested(order_id, *items):
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in items]
    return request(events.INVENTORY_RESERVATION_REQUESTED, order_id, items=items)


def release_requested(order_id):
    return request(events.INVENTORY_RELEASE_REQUESTED, order_id)


def order_completed(order_id):
    return request(events.ORDER_COMPLETED, order_id, customer_id="42", total_amount="25.00")


def reservation_stream(order_id):
    return event_store.read_stream(events.RESERVATION, order_id)


def checkpoint(handler):
    return Checkpoint.objects.get(subscriber=handler.name)


def test_a_reservation_request_reserves_and_replies_with_inventory_reserved(
    handler, make_product, stock_of
):
    make_product("p1", stock=10, price="2.50")
    requested = reservation_requested("order-1", ("p1", 3))

    result = catch_up(handler)

    assert (result.handled, result.error) == (1, "")
    [reply] = reservation_stream("order-1")
    assert reply.event_type == events.INVENTORY_RESERVED
    assert reply.payload == {
        "reservation_id": "order-1",
        "lines": [{"product_id": "p1", "quantity": 3, "unit_price": "2.50"}],
        "total_amount": "7.50",
    }
    assert reply.metadata == {
        "correlation_id": "order-1",
        "causation_id": str(requested.event_id),
        "actor": ACTOR,
    }
    assert stock_of("p1") == (7, 3, 0, 10)


def test_the_stock_events_of_a_request_carry_its_correlation_and_causation(handler, make_product):
    make_product("p1", stock=10)
    requested = reservation_requested("order-1", ("p1", 3))

    catch_up(handler)

    [moved] = Event.objects.filter(event_type=events.STOCK_RESERVED)
    assert moved.metadata["correlation_id"] == "order-1"
    assert moved.metadata["causation_id"] == str(requested.event_id)


def test_a_request_that_cannot_be_met_replies_with_inventory_reservation_failed(
    handler, make_product, stock_of
):
    make_product("p1", stock=2)
    requested = reservation_requested("order-1", ("p1", 3))

    catch_up(handler)

    [reply] = reservation_stream("order-1")
    assert reply.event_type == events.INVENTORY_RESERVATION_FAILED
    assert reply.payload["details"] == [{"product_id": "p1", "requested": 3, "available": 2}]
    assert reply.metadata["causation_id"] == str(requested.event_id)
    assert stock_of("p1") == (2, 0, 0, 2)


def test_a_request_delivered_twice_as_two_events_reserves_once(handler, make_product, stock_of):
    make_product("p1", stock=10)
    first = reservation_requested("order-1", ("p1", 3))
    reservation_requested("order-1", ("p1", 3))

    result = catch_up(handler)

    assert result.handled == 2
    [reply] = reservation_stream("order-1")
    assert reply.metadata["causation_id"] == str(first.event_id)
    assert stock_of("p1") == (7, 3, 0, 10)


def test_handling_the_same_event_twice_reserves_once(handler, make_product, stock_of):
    make_product("p1", stock=10)
    requested = reservation_requested("order-1", ("p1", 3))

    handler.handle(requested)
    count = Event.objects.count()
    handler.handle(requested)

    assert Event.objects.count() == count
    assert len(reservation_stream("order-1")) == 1
    assert stock_of("p1") == (7, 3, 0, 10)


def test_a_caught_up_handler_does_not_handle_an_event_again(handler, make_product, stock_of):
    make_product("p1", stock=10)
    reservation_requested("order-1", ("p1", 3))
    catch_up(handler)

    again = catch_up(handler)

    assert again.handled == 0
    assert stock_of("p1") == (7, 3, 0, 10)


def test_a_release_request_releases_the_reservation(handler, make_product, stock_of):
    make_product("p1", stock=10)
    reservation_requested("order-1", ("p1", 3))
    catch_up(handler)
    released = release_requested("order-1")

    catch_up(handler)

    reply = reservation_stream("order-1")[-1]
    assert reply.event_type == events.INVENTORY_RELEASED
    assert reply.payload == {
        "reservation_id": "order-1",
        "lines": [{"product_id": "p1", "quantity": 3}],
    }
    assert reply.metadata["causation_id"] == str(released.event_id)
    assert stock_of("p1") == (10, 0, 0, 10)


def test_a_release_request_delivered_twice_releases_once(handler, make_product, stock_of):
    make_product("p1", stock=10)
    reservation_requested("order-1", ("p1", 3))
    release_requested("order-1")
    release_requested("order-1")

    result = catch_up(handler)

    assert result.handled == 3
    assert [event.event_type for event in reservation_stream("order-1")] == [
        events.INVENTORY_RESERVED,
        events.INVENTORY_RELEASED,
    ]
    assert stock_of("p1") == (10, 0, 0, 10)


def test_a_release_request_for_an_unknown_order_records_a_release_of_nothing(handler):
    released = release_requested("order-1")

    result = catch_up(handler)

    assert (result.handled, result.error) == (1, "")
    [reply] = reservation_stream("order-1")
    assert reply.event_type == events.INVENTORY_RELEASED
    assert reply.payload == {"reservation_id": "order-1", "lines": []}
    assert reply.metadata["causation_id"] == str(released.event_id)


def test_a_reservation_request_arriving_after_the_release_reserves_nothing(
    handler, make_product, stock_of
):
    make_product("p1", stock=10)
    release_requested("order-1")
    reservation_requested("order-1", ("p1", 3))

    result = catch_up(handler)

    assert (result.handled, result.error) == (2, "")
    assert [event.event_type for event in reservation_stream("order-1")] == [
        events.INVENTORY_RELEASED
    ]
    assert stock_of("p1") == (10, 0, 0, 10)


def test_order_completed_commits_the_reservation(handler, make_product, stock_of):
    make_product("p1", stock=10)
    make_product("p2", stock=10)
    reservation_requested("order-1", ("p1", 3), ("p2", 1))
    completed = order_completed("order-1")

    catch_up(handler)

    reply = reservation_stream("order-1")[-1]
    assert reply.event_type == events.INVENTORY_COMMITTED
    assert reply.metadata["causation_id"] == str(completed.event_id)
    assert stock_of("p1") == (7, 0, 3, 10)
    assert stock_of("p2") == (9, 0, 1, 10)


def test_order_completed_delivered_twice_sells_once(handler, make_product, stock_of):
    make_product("p1", stock=10)
    reservation_requested("order-1", ("p1", 3))
    order_completed("order-1")
    order_completed("order-1")

    catch_up(handler)

    assert stock_of("p1") == (7, 0, 3, 10)
    assert Event.objects.filter(event_type=events.INVENTORY_COMMITTED).count() == 1


@pytest.mark.parametrize("reservation", ["failed", "unknown"])
def test_order_completed_whose_stock_cannot_be_committed_is_logged_and_does_not_block(
    handler, make_product, stock_of, caplog, reservation
):
    make_product("p1", stock=2)
    requests = [reservation_requested("order-1", ("p1", 3))] if reservation == "failed" else []
    completed = order_completed("order-1")
    requests += [completed, reservation_requested("order-2", ("p1", 1))]

    with caplog.at_level(logging.ERROR, logger="inventory.handlers"):
        result = catch_up(handler)

    assert result.error == ""
    assert result.handled == len(requests)
    saved = checkpoint(handler)
    assert saved.position == result.position > completed.position
    assert (saved.last_error, saved.failed_position) == ("", None)
    [record] = [r for r in caplog.records if r.name == "inventory.handlers"]
    assert record.levelno == logging.ERROR
    assert "order-1" in record.getMessage()
    assert record.exc_info is not None
    # The request after the completed order was handled all the same.
    assert reservation_stream("order-2")[0].event_type == events.INVENTORY_RESERVED
    assert stock_of("p1") == (1, 1, 0, 2)


@pytest.mark.parametrize("items", [[], [{"product_id": "p1", "quantity": 0}]])
def test_a_malformed_reservation_request_is_logged_and_does_not_block_later_ones(
    handler, make_product, stock_of, caplog, items
):
    make_product("p1", stock=2)
    request(events.INVENTORY_RESERVATION_REQUESTED, "order-1", items=items)
    later = reservation_requested("order-2", ("p1", 1))

    with caplog.at_level(logging.ERROR, logger="inventory.handlers"):
        result = catch_up(handler)

    assert (result.error, checkpoint(handler).position) == ("", later.position)
    assert reservation_stream("order-1") == []
    assert any(
        "order-1" in r.getMessage() for r in caplog.records if r.name == "inventory.handlers"
    )
    assert stock_of("p1") == (1, 1, 0, 2)


def test_events_of_other_types_are_left_alone(handler, make_product, stock_of):
    make_product("p1", stock=10)
    request("OrderPlaced", "order-1", items=[{"product_id": "p1", "quantity": 3}])

    result = catch_up(handler)

    assert result.handled == 0
    assert not reservation_stream("order-1")
    assert stock_of("p1") == (10, 0, 0, 10)


def test_requests_are_handled_after_commit_without_an_explicit_catch_up(
    make_product, stock_of, django_capture_on_commit_callbacks
):
    make_product("p1", stock=10)
    order_id = f"order-{uuid.uuid4().hex[:8]}"

    with django_capture_on_commit_callbacks(execute=True):
        reservation_requested(order_id, ("p1", 3))

    assert reservation_stream(order_id)[0].event_type == events.INVENTORY_RESERVED
    assert stock_of("p1") == (7, 3, 0, 10)

"""Orders' reactions: the saga subscriber (started by OrderCreated, moved by replies, each event
once) and the worker-pass housekeeping that expires overdue replies."""

import logging
from io import StringIO

import pytest
from django.core.management import call_command

from eventstore import signals
from eventstore.follower.subscriptions import catch_up, get_subscribers
from eventstore.models import Checkpoint
from eventstore.store import event_store
from orders import events
from orders.aggregates import Order, Saga
from orders.handlers import FulfilmentSagaHandler, expire_sagas_on_worker_pass
from orders.saga import ACTOR
from orders.services import orders, sagas
from tests.factories import append_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def handler():
    """The saga subscriber as apps.ready() registered it."""
    [subscriber] = get_subscribers(["orders.saga"])
    assert isinstance(subscriber, FulfilmentSagaHandler)
    return subscriber


@pytest.fixture
def inventory():
    [subscriber] = get_subscribers(["inventory.requests"])
    return subscriber


def saga_types(order_id):
    return [event.event_type for event in event_store.read_stream(events.SAGA, order_id)]


def test_the_handler_reads_what_starts_a_saga_and_every_reply():
    assert FulfilmentSagaHandler.event_types == {
        events.ORDER_CREATED,
        events.ORDER_CANCELLATION_REQUESTED,
        events.INVENTORY_RETURNED,
        events.INVENTORY_RESERVED,
        events.INVENTORY_RESERVATION_FAILED,
        events.INVENTORY_RELEASED,
        events.PAYMENT_PROCESSED,
        events.PAYMENT_FAILED,
        events.PAYMENT_REFUNDED,
    }


def test_order_created_starts_the_saga_as_caused_by_it(handler, make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)
    [created] = event_store.read_stream(events.ORDER, order_id)

    result = catch_up(handler)

    assert (result.handled, result.error) == (1, "")
    assert saga_types(order_id) == [events.SAGA_STARTED, events.INVENTORY_RESERVATION_REQUESTED]
    started = event_store.read_stream(events.SAGA, order_id)[0]
    assert started.metadata == {
        "causation_id": str(created.event_id),
        "actor": ACTOR,
        "correlation_id": order_id,
    }
    assert Checkpoint.objects.get(subscriber="orders.saga").position == created.position


def test_each_event_is_handled_once(handler, make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)
    catch_up(handler)

    again = catch_up(handler)

    assert again.handled == 0
    assert saga_types(order_id) == [events.SAGA_STARTED, events.INVENTORY_RESERVATION_REQUESTED]


def test_a_reply_moves_the_saga_of_the_order_it_names(handler, inventory, make_product, place):
    make_product("p1", price="5.00")
    order_id = place([("p1", 2)], run_saga=False)
    catch_up(handler)
    catch_up(inventory)  # replies InventoryReserved

    result = catch_up(handler)

    assert (result.handled, result.error) == (1, "")
    assert saga_types(order_id)[-2:] == [events.SAGA_STEP_SUCCEEDED, events.PAYMENT_REQUESTED]
    order = orders.load(order_id)
    assert (order.status, order.total_amount) == (Order.INVENTORY_RESERVED, "10.00")


def test_an_order_created_on_a_stream_that_is_no_order_does_not_stop_later_sagas(
    make_product, place
):
    """Event type names are shared by every stream: an OrderCreated appended elsewhere (an
    import, a script) must not block the one subscriber that runs every order's saga."""
    make_product("p1")
    append_event(
        aggregate_type="import",
        event_type=events.ORDER_CREATED,
        payload={"order_id": "x", "customer_id": "c-1", "items": [], "payment_token": "t"},
    )

    order_id = place()

    assert sagas.load_or_new(order_id).state == Saga.COMPLETED
    assert Checkpoint.objects.get(subscriber="orders.saga").last_error == ""


# --- worker pass ---------------------------------------------------------------------------------


def test_a_worker_pass_expires_overdue_replies_and_logs_how_many(place_waiting, settings, caplog):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    order_id = place_waiting()

    with caplog.at_level(logging.INFO, logger="orders.handlers"):
        expire_sagas_on_worker_pass()

    assert sagas.load(order_id).state == Saga.COMPENSATING
    assert [
        record.getMessage() for record in caplog.records if record.name == "orders.handlers"
    ] == ["Expired the overdue step of 1 saga(s)"]


def test_a_worker_pass_with_nothing_overdue_logs_nothing(place_waiting, caplog):
    order_id = place_waiting()

    with caplog.at_level(logging.INFO, logger="orders.handlers"):
        expire_sagas_on_worker_pass()

    assert sagas.load(order_id).state == Saga.RUNNING
    assert not [record for record in caplog.records if record.name == "orders.handlers"]


def test_the_housekeeping_is_connected_to_the_worker_pass_signal(place_waiting, settings):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    order_id = place_waiting()

    responses = signals.worker_pass.send(sender=None)

    assert expire_sagas_on_worker_pass in [receiver for receiver, _ in responses]
    assert sagas.load(order_id).state == Saga.COMPENSATING


def test_process_events_expires_overdue_replies_then_delivers_the_compensation(
    place_waiting, settings
):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    order_id = place_waiting()

    call_command("process_events", stdout=StringIO())
    assert saga_types(order_id)[-1] == events.INVENTORY_RELEASE_REQUESTED
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 30  # the release is not overdue
    call_command("process_events", stdout=StringIO())  # inventory releases the stock
    call_command("process_events", stdout=StringIO())  # the saga reads the confirmation

    assert sagas.load(order_id).state == Saga.COMPENSATED
    assert orders.load(order_id).status == Order.CANCELLED

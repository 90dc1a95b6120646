"""OrderFulfillmentSaga on the happy path: every step in order, each decision correlated with
the order, started once."""

import pytest

from eventstore.models import Event
from eventstore.store import event_store
from orders import events
from orders.aggregates import Order, OrderNotFound, Saga
from orders.saga import ACTOR, FULFILMENT_V1, fulfilment
from tests.orders.sagas import COMPLETED_ORDER, HAPPY_SAGA, order_of, saga_of

pytestmark = pytest.mark.django_db


# --- the happy path ------------------------------------------------------------------------------


def test_a_paid_order_runs_every_step_in_order_and_completes(
    make_product, place, saga_types, order_types, stock_of
):
    make_product("p1", stock=10, price="12.50")

    order_id = place([("p1", 2)])

    assert saga_types(order_id) == HAPPY_SAGA
    assert order_types(order_id) == COMPLETED_ORDER
    saga = saga_of(order_id)
    assert saga.state == Saga.COMPLETED
    assert saga.succeeded_steps == [step.name for step in FULFILMENT_V1]
    order = order_of(order_id)
    assert (order.status, order.total_amount, order.confirmed) == (Order.COMPLETED, "25.00", True)
    assert order.items == [{"product_id": "p1", "quantity": 2, "unit_price": "12.50"}]
    assert order.transaction_id.startswith("txn_")
    assert stock_of("p1") == (8, 0, 2)


def test_the_saga_asks_inventory_and_payments_with_the_order_id(make_product, place):
    make_product("p1", stock=10, price="12.50")

    order_id = place([("p1", 2)], customer_id="c-9", token="tok_visa_success")

    requests = {
        event.event_type: event.payload for event in event_store.read_stream(events.SAGA, order_id)
    }
    assert requests[events.INVENTORY_RESERVATION_REQUESTED] == {
        "order_id": order_id,
        "items": [{"product_id": "p1", "quantity": 2}],
        "step": "reserve_inventory",
    }
    created = event_store.read_stream(events.ORDER, order_id)[0].payload
    assert requests[events.PAYMENT_REQUESTED] == {
        "payment_id": order_id,
        "customer_id": "c-9",
        "amount": "25.00",
        # The token itself stays in the vault: the request names it and describes it.
        "payment_token_ref": created["payment_token_ref"],
        "payment_method": events.payment_method_of("tok_visa_success"),
        "step": "process_payment",
    }


def test_every_saga_decision_is_correlated_with_the_order_and_names_its_cause(make_product, place):
    make_product("p1")

    order_id = place()

    by_id = {str(event.event_id): event for event in Event.objects.all()}
    decisions = Event.objects.filter(aggregate_type__in=[events.SAGA, events.ORDER]).exclude(
        event_type=events.ORDER_CREATED
    )
    assert decisions.exists()
    for decision in decisions:
        assert decision.metadata["correlation_id"] == order_id
        assert decision.metadata["actor"] == ACTOR
        assert by_id[decision.metadata["causation_id"]].metadata["correlation_id"] == order_id


def test_execute_records_the_event_that_caused_it(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)
    [created] = event_store.read_stream(events.ORDER, order_id)

    saga = fulfilment.execute(order_id, cause=created)

    assert saga.state == Saga.RUNNING
    started = event_store.read_stream(events.SAGA, order_id)[0]
    assert started.metadata == {
        "causation_id": str(created.event_id),
        "actor": ACTOR,
        "correlation_id": order_id,
    }


def test_execute_without_a_cause_records_the_orders_service_as_the_actor(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)

    fulfilment.execute(order_id)

    started = event_store.read_stream(events.SAGA, order_id)[0]
    assert started.metadata == {"correlation_id": order_id, "actor": ACTOR}


def test_execute_again_returns_the_saga_and_records_nothing(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)
    first = fulfilment.execute(order_id)
    count = Event.objects.count()

    again = fulfilment.execute(order_id)

    assert Event.objects.count() == count
    assert (again.id, again.version, again.state) == (first.id, first.version, first.state)


def test_execute_for_an_unknown_order_raises_and_records_nothing():
    with pytest.raises(OrderNotFound, match="'nope' does not exist"):
        fulfilment.execute("nope")

    assert not Event.objects.exists()


@pytest.mark.parametrize("token", ["tok_timeout", "tok_decline"], ids=["waiting", "failed"])
def test_a_reply_delivered_again_never_restarts_a_step_that_started(
    make_product, place, saga_types, order_types, token
):
    make_product("p1")
    order_id = place(token=token)
    [reserved] = [
        event
        for event in event_store.read_stream("reservation", order_id)
        if event.event_type == events.INVENTORY_RESERVED
    ]
    before = (saga_types(order_id), order_types(order_id))

    fulfilment.handle_reply(reserved)

    assert (saga_types(order_id), order_types(order_id)) == before

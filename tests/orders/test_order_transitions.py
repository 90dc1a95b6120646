"""The Order state machine: legal transitions only, each recording its event; state from events."""

import uuid

import pytest

from eventstore.upcasting import upcast
from orders import events
from orders.aggregates import IllegalTransition, Order, total_of

ORDER_ID = "o-1"
ITEMS = [{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}]
LINES = [
    {"product_id": "p1", "quantity": 2, "unit_price": "12.50"},
    {"product_id": "p2", "quantity": 1, "unit_price": "3.00"},
]
METHOD = {"kind": "visa", "last4": "4242", "fingerprint": "0123456789abcdef"}

# Each command of the order, as the event it records.
COMMANDS = {
    events.ORDER_CREATED: lambda order: order.create(
        customer_id="c-1",
        items=ITEMS,
        payment_method=METHOD,
        payment_token_ref="3f1c6e2a-0000-4000-8000-000000000001",
    ),
    events.ORDER_INVENTORY_RESERVED: lambda order: order.inventory_reserved(
        lines=LINES, total_amount="28.00"
    ),
    events.ORDER_INVENTORY_FAILED: lambda order: order.inventory_failed(
        reason="insufficient_stock"
    ),
    events.ORDER_PAYMENT_PROCESSED: lambda order: order.payment_processed(
        transaction_id="txn_1", amount="28.00"
    ),
    events.ORDER_PAYMENT_FAILED: lambda order: order.payment_failed(reason="card_declined"),
    events.ORDER_INVENTORY_RELEASED: lambda order: order.inventory_released(),
    events.ORDER_CONFIRMED: lambda order: order.confirm(),
    events.ORDER_COMPLETED: lambda order: order.complete(),
    events.ORDER_CANCELLED: lambda order: order.cancel(reason="card_declined"),
    events.ORDER_CANCELLATION_REQUESTED: lambda order: order.request_cancellation(
        reason="changed my mind", requested_by="user:1"
    ),
    events.ORDER_REFUNDED: lambda order: order.refunded(),
}

# The events that bring a new order into each situation ("confirmed": paid and confirmed).
HISTORIES = {
    "new": [],
    Order.PENDING: [events.ORDER_CREATED],
    Order.INVENTORY_RESERVED: [events.ORDER_CREATED, events.ORDER_INVENTORY_RESERVED],
    Order.PAYMENT_PROCESSED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
    ],
    "confirmed": [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
    ],
    Order.COMPLETED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
    ],
    Order.INVENTORY_FAILED: [events.ORDER_CREATED, events.ORDER_INVENTORY_FAILED],
    Order.PAYMENT_FAILED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_FAILED,
    ],
    Order.INVENTORY_RELEASED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_FAILED,
        events.ORDER_INVENTORY_RELEASED,
    ],
    Order.CANCELLED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_FAILED,
        events.ORDER_CANCELLED,
    ],
    # In fulfilment with a cancellation asked for.
    "pending, cancel asked": [events.ORDER_CREATED, events.ORDER_CANCELLATION_REQUESTED],
    "reserved, cancel asked": [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_CANCELLATION_REQUESTED,
    ],
    Order.CANCELLING: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
        events.ORDER_CANCELLATION_REQUESTED,
    ],
    Order.REFUNDED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
        events.ORDER_CANCELLATION_REQUESTED,
        events.ORDER_REFUNDED,
    ],
}

# Every legal (situation, command) and the status it leads to; everything else is illegal.
LEGAL = {
    ("new", events.ORDER_CREATED): Order.PENDING,
    (Order.PENDING, events.ORDER_INVENTORY_RESERVED): Order.INVENTORY_RESERVED,
    (Order.PENDING, events.ORDER_INVENTORY_FAILED): Order.INVENTORY_FAILED,
    (Order.INVENTORY_RESERVED, events.ORDER_PAYMENT_PROCESSED): Order.PAYMENT_PROCESSED,
    (Order.INVENTORY_RESERVED, events.ORDER_PAYMENT_FAILED): Order.PAYMENT_FAILED,
    (Order.PAYMENT_FAILED, events.ORDER_INVENTORY_RELEASED): Order.INVENTORY_RELEASED,
    (Order.PAYMENT_PROCESSED, events.ORDER_CONFIRMED): Order.PAYMENT_PROCESSED,
    ("confirmed", events.ORDER_COMPLETED): Order.COMPLETED,
    (Order.INVENTORY_FAILED, events.ORDER_CANCELLED): Order.CANCELLED,
    (Order.INVENTORY_RELEASED, events.ORDER_CANCELLED): Order.CANCELLED,
    (Order.PENDING, events.ORDER_CANCELLATION_REQUESTED): Order.PENDING,
    (Order.INVENTORY_RESERVED, events.ORDER_CANCELLATION_REQUESTED): Order.INVENTORY_RESERVED,
    (Order.COMPLETED, events.ORDER_CANCELLATION_REQUESTED): Order.CANCELLING,
    ("pending, cancel asked", events.ORDER_INVENTORY_RESERVED): Order.INVENTORY_RESERVED,
    ("pending, cancel asked", events.ORDER_INVENTORY_FAILED): Order.INVENTORY_FAILED,
    ("pending, cancel asked", events.ORDER_CANCELLED): Order.CANCELLED,
    ("reserved, cancel asked", events.ORDER_PAYMENT_PROCESSED): Order.PAYMENT_PROCESSED,
    ("reserved, cancel asked", events.ORDER_PAYMENT_FAILED): Order.PAYMENT_FAILED,
    ("reserved, cancel asked", events.ORDER_CANCELLED): Order.CANCELLED,
    (Order.CANCELLING, events.ORDER_REFUNDED): Order.REFUNDED,
}
ILLEGAL = [
    (situation, command)
    for situation in HISTORIES
    for command in COMMANDS
    if (situation, command) not in LEGAL
]


def order_in(situation, order_id=ORDER_ID):
    """An order brought into `situation` by its commands, with its events already saved."""
    order = Order(order_id)
    for command in HISTORIES[situation]:
        COMMANDS[command](order)
    order.mark_saved()
    return order


def test_the_legal_table_is_exactly_the_orders_transition_table():
    def status_of(situation):
        return {
            "new": "",
            "confirmed": Order.PAYMENT_PROCESSED,
            "pending, cancel asked": Order.PENDING,
            "reserved, cancel asked": Order.INVENTORY_RESERVED,
        }.get(situation, situation)

    table = {(status_of(situation), command): to for (situation, command), to in LEGAL.items()}

    assert table == Order.TRANSITIONS


@pytest.mark.parametrize(("situation", "command"), list(LEGAL), ids="{0[0]}-{0[1]}".format)
def test_a_legal_transition_records_its_event_and_moves_the_status(situation, command):
    order = order_in(situation)

    COMMANDS[command](order)

    [event] = order.pending_events
    assert event.event_type == command
    assert event.payload["order_id"] == ORDER_ID
    assert order.status == LEGAL[(situation, command)]
    assert order.version == len(HISTORIES[situation]) + 1


@pytest.mark.parametrize(("situation", "command"), ILLEGAL, ids="{0[0]}-{0[1]}".format)
def test_an_illegal_transition_raises_and_records_nothing(situation, command):
    order = order_in(situation)
    before = (order.status, order.version, order.confirmed)

    with pytest.raises(IllegalTransition, match=r"is not allowed$"):
        COMMANDS[command](order)

    assert order.pending_events == []
    assert (order.status, order.version, order.confirmed) == before


def test_an_illegal_transition_names_the_order_and_its_status():
    with pytest.raises(IllegalTransition) as new_order:
        order_in("new").confirm()
    with pytest.raises(IllegalTransition) as pending_order:
        order_in(Order.PENDING).complete()

    assert str(new_order.value) == "Order 'o-1' is not created: OrderConfirmed is not allowed"
    assert str(pending_order.value) == "Order 'o-1' is pending: OrderCompleted is not allowed"


def test_an_order_is_confirmed_only_once_and_completed_only_after_confirmation():
    paid = order_in(Order.PAYMENT_PROCESSED)
    with pytest.raises(IllegalTransition):
        paid.complete()

    paid.confirm()
    with pytest.raises(IllegalTransition):
        paid.confirm()
    paid.complete()

    assert paid.confirmed is True
    assert [event.event_type for event in paid.pending_events] == [
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
    ]


def test_an_order_exists_once_created():
    assert order_in("new").exists is False
    assert order_in(Order.PENDING).exists is True


def test_create_keeps_only_product_and_quantity_of_each_item():
    order = Order(ORDER_ID)
    event_id = uuid.uuid4()

    order.create(
        customer_id="c-1",
        items=[{"product_id": "p1", "quantity": 2, "unit_price": "1.00", "note": "x"}],
        payment_method=METHOD,
        payment_token_ref="ref-1",
        idempotency_key="key-1",
        event_id=event_id,
    )

    [event] = order.pending_events
    assert event.event_id == event_id
    assert event.payload == {
        "order_id": ORDER_ID,
        "customer_id": "c-1",
        "items": [{"product_id": "p1", "quantity": 2}],
        "payment_method": METHOD,
        "payment_token_ref": "ref-1",
        "idempotency_key": "key-1",
    }
    assert order.items == [{"product_id": "p1", "quantity": 2, "unit_price": None}]
    assert (
        order.customer_id,
        order.payment_method,
        order.payment_token_ref,
        order.idempotency_key,
    ) == ("c-1", METHOD, "ref-1", "key-1")


def test_an_order_created_before_idempotency_keys_existed_has_an_empty_key():
    order = Order(ORDER_ID)

    stored = {"order_id": ORDER_ID, "customer_id": "c-1", "items": ITEMS, "payment_token": "tok"}

    order.replay_payload(1, events.ORDER_CREATED, upcast(events.ORDER_CREATED, 1, stored)[1])

    assert (order.status, order.idempotency_key) == (Order.PENDING, "")
    assert (order.payment_method["kind"], order.payment_token_ref) == ("token", None)


def test_inventory_reserved_prices_each_item_with_inventorys_unit_price():
    order = order_in(Order.PENDING)

    # p2 is missing from the reply: its price stays unknown rather than being made up.
    order.inventory_reserved(lines=LINES[:1], total_amount="25.00")

    assert order.items == [
        {"product_id": "p1", "quantity": 2, "unit_price": "12.50"},
        {"product_id": "p2", "quantity": 1, "unit_price": None},
    ]
    assert order.total_amount == "25.00"
    assert order.pending_events[-1].payload == {
        "order_id": ORDER_ID,
        "items": order.items,
        "total_amount": "25.00",
    }


def test_failures_record_their_reason():
    inventory = order_in(Order.PENDING)
    inventory.inventory_failed(reason="insufficient_stock")
    payment = order_in(Order.INVENTORY_RESERVED)
    payment.payment_failed(reason="card_declined")

    assert inventory.failure_reason == "insufficient_stock"
    assert payment.failure_reason == "card_declined"
    assert payment.pending_events[-1].payload == {"order_id": ORDER_ID, "reason": "card_declined"}


def test_confirm_complete_and_cancel_tell_the_customer_items_and_amount():
    confirmed = order_in(Order.PAYMENT_PROCESSED)
    confirmed.confirm()
    confirmed.complete()
    cancelled = order_in(Order.INVENTORY_FAILED)
    cancelled.cancel(reason="insufficient_stock")

    confirm, complete = confirmed.pending_events
    expected = {
        "order_id": ORDER_ID,
        "customer_id": "c-1",
        "items": LINES,
        "total_amount": "28.00",
    }
    assert confirm.payload == complete.payload == expected
    assert cancelled.pending_events[-1].payload == {
        "order_id": ORDER_ID,
        "customer_id": "c-1",
        # Never reserved: the items have no prices and the order no total.
        "items": [{**item, "unit_price": None} for item in ITEMS],
        "total_amount": None,
        "reason": "insufficient_stock",
    }


def test_a_cancelled_order_that_was_priced_tells_its_items_prices_and_total():
    order = order_in(Order.INVENTORY_RELEASED)

    order.cancel(reason="card_declined")

    payload = order.pending_events[-1].payload
    assert (payload["items"], payload["total_amount"]) == (LINES, "28.00")


def test_a_paid_order_keeps_its_transaction_id():
    order = order_in(Order.PAYMENT_PROCESSED)

    assert order.transaction_id == "txn_1"


@pytest.mark.parametrize("situation", list(HISTORIES))
def test_replaying_an_orders_events_rebuilds_the_same_state(replayed, situation):
    order = Order(ORDER_ID)
    for command in HISTORIES[situation]:
        COMMANDS[command](order)

    assert replayed(order).snapshot() == order.snapshot()


@pytest.mark.parametrize(
    ("lines", "total"),
    [
        ([], "0.00"),
        (LINES, "28.00"),
        ([{"product_id": "p1", "quantity": 3, "unit_price": "0.333"}], "1.00"),
        ([{"product_id": "p1", "quantity": 1, "unit_price": "19.995"}], "20.00"),
    ],
)
def test_total_of_sums_the_lines_to_two_places(lines, total):
    assert total_of(lines) == total


def test_a_cancellation_asked_for_in_fulfilment_is_taken_up_again_once_the_order_completes():
    order = order_in("reserved, cancel asked")
    for command in (
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
    ):
        COMMANDS[command](order)

    order.request_cancellation(reason=order.cancellation_reason)

    assert order.status == Order.CANCELLING
    assert order.pending_events[-1].payload["reason"] == "changed my mind"
    with pytest.raises(IllegalTransition):
        order.request_cancellation()

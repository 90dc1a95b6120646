"""Orders' services: placing an order (rules, idempotency, after-commit saga) and reading it."""

import uuid

import pytest
from django.db import transaction

from eventstore.aggregates import derived_event_id
from eventstore.follower.effects import TransactionOpen
from eventstore.models import Event
from eventstore.store import event_store
from eventstore.vault import vault_take
from orders import events, services
from orders.aggregates import Order
from orders.services import (
    MAX_LINES,
    MAX_QUANTITY,
    IdempotencyKeyReused,
    InvalidOrder,
    UnknownProducts,
    order_id_for_key,
    order_place,
    order_wait_final,
    orders,
)

pytestmark = pytest.mark.django_db


def line(product_id="p1", quantity=1):
    return {"product_id": product_id, "quantity": quantity}


def place_order(items=None, **kwargs):
    """Place an order through the service (the saga runs only where after-commit runs)."""
    kwargs.setdefault("customer_id", "c-1")
    return order_place(items=items if items is not None else [line()], **kwargs)


# --- order_place ---------------------------------------------------------------------------------


def test_placing_an_order_records_order_created_with_the_given_metadata(make_product):
    make_product("p1")
    make_product("p2")

    placed = place_order(
        [line("p1", 2), line("p2", 1)],
        payment_token="tok_decline",
        metadata={"actor": "user:7", "correlation_id": "ignored"},
    )

    assert placed.created is True
    order_id = placed.order.id
    assert str(uuid.UUID(order_id)) == order_id
    [created] = event_store.read_stream(events.ORDER, order_id)
    assert created.event_type == events.ORDER_CREATED
    token_ref = created.payload["payment_token_ref"]
    assert created.payload == {
        "order_id": order_id,
        "customer_id": "c-1",
        "items": [line("p1", 2), line("p2", 1)],
        "payment_method": {
            "kind": "visa",
            "last4": "0002",
            "fingerprint": events.payment_method_of("tok_decline")["fingerprint"],
        },
        "payment_token_ref": token_ref,
        "idempotency_key": "",
    }
    # The token itself is in the vault, for payments to take when it charges.
    assert vault_take(token_ref) == "tok_decline"
    # The order id is the correlation id of the whole fulfilment, whatever the caller said.
    assert created.metadata == {"actor": "user:7", "correlation_id": order_id}
    assert placed.order.status == Order.PENDING


def test_the_payment_token_defaults_to_the_approving_test_token(make_product):
    make_product("p1")

    placed = place_order()

    assert vault_take(placed.order.payment_token_ref) == "tok_visa_success"
    assert (placed.order.payment_method["kind"], placed.order.payment_method["last4"]) == (
        "visa",
        "4242",
    )


@pytest.mark.parametrize(
    ("token", "kind", "last4"),
    [
        ("tok_visa_success", "visa", "4242"),
        ("tok_decline", "visa", "0002"),
        ("tok_insufficient_funds", "visa", "9995"),
        ("tok_timeout", "token", ""),
        ("tok_from_another_provider_1234", "token", ""),
    ],
)
def test_the_payment_method_is_described_as_payments_knows_the_token(token, kind, last4):
    """Card tokens read as the card's brand and last four digits, any other as a plain kind:
    never a piece of the token."""
    described = events.payment_method_of(token)

    assert (described["kind"], described["last4"]) == (kind, last4)
    assert described["fingerprint"] != events.payment_method_of("tok_other")["fingerprint"]


def test_the_saga_starts_only_once_the_order_commits(make_product, run_after_commit):
    make_product("p1")

    with run_after_commit():
        placed = place_order()
        assert event_store.read_stream(events.SAGA, placed.order.id) == []

    assert orders.load(placed.order.id).status == Order.COMPLETED


def test_an_order_that_is_rolled_back_starts_no_saga(make_product, run_after_commit):
    make_product("p1")
    count = Event.objects.count()

    with run_after_commit(), pytest.raises(RuntimeError), transaction.atomic():
        place_order()
        raise RuntimeError("the caller's transaction fails")

    assert Event.objects.count() == count


def test_two_placements_without_a_key_are_two_orders(make_product):
    make_product("p1")

    first, second = place_order(), place_order()

    assert first.order.id != second.order.id
    assert first.created and second.created


def test_product_ids_are_taken_as_strings(make_product):
    make_product("42")

    placed = place_order([{"product_id": 42, "quantity": 1}])

    assert placed.order.items == [{"product_id": "42", "quantity": 1, "unit_price": None}]


def test_the_largest_quantity_is_accepted(make_product):
    make_product("p1", stock=MAX_QUANTITY)

    placed = place_order([line("p1", MAX_QUANTITY)])

    assert placed.order.items[0]["quantity"] == MAX_QUANTITY


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "1 to 100 lines"),
        ([line(f"p{n}") for n in range(MAX_LINES + 1)], "1 to 100 lines"),
        ([line("p1", 0)], "must be 1 to 1000"),
        ([line("p1", MAX_QUANTITY + 1)], "must be 1 to 1000"),
        ([line("p1", -3)], "must be 1 to 1000"),
        ([line("p1", "2")], "must be an integer"),
        ([line("p1", 2.0)], "must be an integer"),
        ([line("p1", True)], "must be an integer"),
        ([line("p1"), line("p1", 2)], "appears on two lines"),
    ],
    ids=[
        "no lines",
        "too many lines",
        "zero",
        "too many units",
        "negative",
        "string quantity",
        "float quantity",
        "bool quantity",
        "duplicate product",
    ],
)
def test_an_order_breaking_a_line_rule_is_refused_and_writes_nothing(make_product, items, message):
    make_product("p1")
    count = Event.objects.count()

    with pytest.raises(InvalidOrder, match=message):
        place_order(items)

    assert Event.objects.count() == count


def test_an_order_naming_unknown_products_lists_them_and_writes_nothing(make_product):
    make_product("p1")
    count = Event.objects.count()

    with pytest.raises(UnknownProducts) as refused:
        place_order([line("ghost"), line("p1"), line("phantom")])

    assert refused.value.product_ids == ["ghost", "phantom"]
    assert str(refused.value) == "Unknown product(s): ghost, phantom"
    assert Event.objects.count() == count


# --- idempotency ---------------------------------------------------------------------------------


def test_an_idempotency_key_stands_for_one_order_id_per_scope():
    key = order_id_for_key(scope="user:1", idempotency_key="k-1")

    assert key == order_id_for_key(scope="user:1", idempotency_key="k-1")
    assert key != order_id_for_key(scope="user:2", idempotency_key="k-1")
    assert key != order_id_for_key(scope="user:1", idempotency_key="k-2")


def test_a_keyed_order_takes_the_keys_order_id_and_a_derived_event_id(make_product):
    make_product("p1")

    placed = place_order(idempotency_key="k-1", idempotency_scope="user:1")

    order_id = order_id_for_key(scope="user:1", idempotency_key="k-1")
    assert placed.order.id == order_id
    [created] = event_store.read_stream(events.ORDER, order_id)
    assert created.event_id == derived_event_id(events.ORDER, order_id, "created")
    assert created.payload["idempotency_key"] == "k-1"
    assert placed.order.idempotency_key == "k-1"


def test_repeating_a_keyed_request_returns_the_first_order_and_writes_nothing(
    make_product, run_after_commit
):
    make_product("p1")
    with run_after_commit():
        first = place_order([line("p1", 2)], idempotency_key="k-1", idempotency_scope="user:1")
    count = Event.objects.count()

    again = place_order([line("p1", 2)], idempotency_key="k-1", idempotency_scope="user:1")

    assert again.created is False
    assert again.order.id == first.order.id
    assert again.order.status == Order.COMPLETED
    assert Event.objects.count() == count


@pytest.mark.parametrize(
    "changed",
    [
        {"customer_id": "c-2"},
        {"items": [line("p1", 3)]},
        {"items": [line("p2", 2)]},
        {"payment_token": "tok_decline"},
    ],
    ids=["customer", "quantity", "product", "token"],
)
def test_a_key_reused_for_a_different_order_is_refused_and_writes_nothing(make_product, changed):
    make_product("p1")
    make_product("p2")
    request = {"customer_id": "c-1", "items": [line("p1", 2)], "payment_token": "tok_visa_success"}
    place_order(**request, idempotency_key="k-1", idempotency_scope="user:1")
    count = Event.objects.count()

    with pytest.raises(IdempotencyKeyReused, match="'k-1' was used for a different order"):
        place_order(**{**request, **changed}, idempotency_key="k-1", idempotency_scope="user:1")

    assert Event.objects.count() == count


@pytest.fixture
def read_before_the_race_was_lost(monkeypatch):
    """A function making the next placement read its order as if a concurrent request with the
    same key had not stored its OrderCreated yet: its own OrderCreated, under the same derived
    event id, then meets the stored one (the store keeps the first)."""

    def arm():
        fresh = services.orders.load_or_new

        def stale(order_id, **kwargs):
            monkeypatch.setattr(services.orders, "load_or_new", fresh)
            return Order(order_id)

        monkeypatch.setattr(services.orders, "load_or_new", stale)

    return arm


def test_a_same_key_request_that_lost_the_race_to_another_order_is_refused(
    make_product, read_before_the_race_was_lost
):
    make_product("p1")
    winner = place_order([line("p1", 2)], idempotency_key="k-1", idempotency_scope="user:1")
    count = Event.objects.count()
    read_before_the_race_was_lost()

    with pytest.raises(IdempotencyKeyReused, match=winner.order.id):
        place_order([line("p1", 3)], idempotency_key="k-1", idempotency_scope="user:1")

    assert Event.objects.count() == count
    assert orders.load(winner.order.id).items[0]["quantity"] == 2


def test_a_same_key_request_that_lost_the_race_to_the_same_order_writes_nothing_more(
    make_product, read_before_the_race_was_lost
):
    make_product("p1")
    winner = place_order([line("p1", 2)], idempotency_key="k-1", idempotency_scope="user:1")
    count = Event.objects.count()
    read_before_the_race_was_lost()

    loser = place_order([line("p1", 2)], idempotency_key="k-1", idempotency_scope="user:1")

    assert loser.order.id == winner.order.id
    assert Event.objects.count() == count


def test_the_same_key_in_two_scopes_places_two_orders(make_product):
    make_product("p1")

    first = place_order(idempotency_key="k-1", idempotency_scope="user:1")
    second = place_order(idempotency_key="k-1", idempotency_scope="user:2")

    assert second.created is True
    assert first.order.id != second.order.id


def test_an_empty_key_is_no_key(make_product):
    make_product("p1")

    first = place_order(idempotency_key="")
    second = place_order(idempotency_key="")

    assert first.order.id != second.order.id
    assert first.order.idempotency_key == ""


# --- the placed order ---------------------------------------------------------------------------


def test_a_placed_order_is_rebuilt_from_its_events(make_product, run_after_commit):
    make_product("p1", price="4.00")
    with run_after_commit():
        placed = place_order([line("p1", 3)])

    order = orders.load(placed.order.id)

    assert (order.status, order.total_amount, order.customer_id) == (
        Order.COMPLETED,
        "12.00",
        "c-1",
    )
    assert order.items == [{"product_id": "p1", "quantity": 3, "unit_price": "4.00"}]


# --- order_wait_final ----------------------------------------------------------------------------


def test_waiting_for_an_order_that_is_final_answers_at_once(make_product, place, monkeypatch):
    make_product("p1")
    order_id = place()
    monkeypatch.setattr(services.time, "sleep", pytest.fail)

    order = order_wait_final(order_id=order_id, timeout=5)

    assert (order.order_id, order.status, order.is_final) == (order_id, "completed", True)


def test_waiting_without_a_timeout_answers_the_order_as_it_stands(make_product, monkeypatch):
    make_product("p1")
    order_id = place_order().order.id
    monkeypatch.setattr(services.time, "sleep", pytest.fail)

    order = order_wait_final(order_id=order_id, timeout=0)

    assert (order.status, order.is_final) == ("pending", False)


def test_waiting_for_an_order_inside_a_transaction_is_refused(make_product):
    make_product("p1")
    order_id = place_order().order.id

    with pytest.raises(TransactionOpen, match="Waiting for an order"), transaction.atomic():
        order_wait_final(order_id=order_id, timeout=1)

"""Inventory's product commands: what creating a product and adding stock append, and
idempotent restocks."""

from decimal import Decimal

import pytest

from eventstore.models import Event
from inventory import events
from inventory.aggregates import InventoryError, ProductAlreadyExists, ProductNotFound
from inventory.services import IdempotencyKeyReused, product_create, stock_add
from tests.inventory.streams import product_types

pytestmark = pytest.mark.django_db


# --- product_create ------------------------------------------------------------------------------


def test_product_create_with_initial_stock_emits_product_created_and_stock_added(store, stock_of):
    product = product_create(
        product_id="p1", name="Blue widget", price=Decimal("12.5"), initial_stock=7
    )

    recorded = store.read_stream(events.PRODUCT, "p1")
    assert [event.event_type for event in recorded] == [events.PRODUCT_CREATED, events.STOCK_ADDED]
    assert recorded[0].payload == {"product_id": "p1", "name": "Blue widget", "price": "12.50"}
    assert recorded[1].payload == {"product_id": "p1", "quantity": 7, "idempotency_key": ""}
    assert product.version == 2
    assert stock_of("p1") == (7, 0, 0, 7)


def test_product_create_without_initial_stock_emits_only_product_created(store):
    product_create(product_id="p1", name="Widget", price=Decimal("1.00"))

    assert product_types(store) == [events.PRODUCT_CREATED]


def test_creating_an_existing_product_raises_and_writes_nothing(make_product):
    make_product("p1")
    count = Event.objects.count()

    with pytest.raises(ProductAlreadyExists, match="p1"):
        make_product("p1", stock=99, price="1.00")

    assert Event.objects.count() == count


@pytest.mark.parametrize(
    ("price", "initial_stock"), [("0.00", 5), ("-1.00", 5), ("1.00", -5)], ids=str
)
def test_product_create_with_a_bad_price_or_stock_writes_nothing(price, initial_stock):
    with pytest.raises(InventoryError):
        product_create(
            product_id="p1", name="Bad", price=Decimal(price), initial_stock=initial_stock
        )

    assert not Event.objects.exists()


# --- stock_add -----------------------------------------------------------------------------------


def test_stock_add_adds_received_units(make_product, store, stock_of):
    make_product("p1", stock=3)

    product = stock_add(product_id="p1", quantity=4)

    assert product.available == 7
    assert stock_of("p1") == (7, 0, 0, 7)
    assert store.read_stream(events.PRODUCT, "p1")[-1].payload == {
        "product_id": "p1",
        "quantity": 4,
        "idempotency_key": "",
    }


def test_stock_add_without_a_key_adds_every_time(make_product, stock_of):
    make_product("p1", stock=0)

    stock_add(product_id="p1", quantity=4)
    stock_add(product_id="p1", quantity=4)

    assert stock_of("p1") == (8, 0, 0, 8)


def test_stock_add_repeated_with_the_same_key_adds_nothing(make_product, stock_of):
    make_product("p1", stock=0)
    first = stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")
    count = Event.objects.count()

    again = stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")

    assert Event.objects.count() == count
    assert stock_of("p1") == (4, 0, 0, 4)
    assert (again.available, again.version) == (first.available, first.version)


def test_stock_add_with_a_reused_key_and_another_quantity_raises_and_writes_nothing(
    make_product, stock_of
):
    make_product("p1", stock=0)
    stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")
    count = Event.objects.count()

    with pytest.raises(IdempotencyKeyReused, match="delivery-1"):
        stock_add(product_id="p1", quantity=5, idempotency_key="delivery-1")

    assert Event.objects.count() == count
    assert stock_of("p1") == (4, 0, 0, 4)


def test_the_same_key_on_another_product_is_another_restock(make_product, stock_of):
    make_product("p1", stock=0)
    make_product("p2", stock=0)

    stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")
    stock_add(product_id="p2", quantity=5, idempotency_key="delivery-1")

    assert stock_of("p1")[0] == 4
    assert stock_of("p2")[0] == 5


@pytest.mark.parametrize("key", [None, "delivery-1"])
def test_stock_add_to_an_unknown_product_raises_product_not_found(key):
    with pytest.raises(ProductNotFound, match="ghost"):
        stock_add(product_id="ghost", quantity=4, idempotency_key=key)

    assert not Event.objects.exists()


def test_stock_add_of_zero_units_raises_and_writes_nothing(make_product):
    make_product("p1")
    count = Event.objects.count()

    with pytest.raises(InventoryError, match="quantity"):
        stock_add(product_id="p1", quantity=0)

    assert Event.objects.count() == count

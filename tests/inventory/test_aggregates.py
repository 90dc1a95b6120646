"""Product and Reservation: their rules, stock invariant, transitions and snapshots."""

import json
import random
from decimal import Decimal

import pytest

from inventory import events
from inventory.aggregates import (
    AdjustmentPastZero,
    InsufficientStock,
    InventoryError,
    Product,
    ProductAlreadyExists,
    ProductDiscontinued,
    ProductNotFound,
    Reservation,
    ReservationStateError,
)


def new_product(product_id="p1", *, stock=10, price="12.50"):
    product = Product(product_id)
    product.create(name=f"Product {product_id}", price=Decimal(price), initial_stock=stock)
    return product


def counters(product):
    return (product.available, product.reserved, product.sold, product.received)


def assert_balanced(product):
    assert product.available + product.reserved + product.sold == (
        product.received + product.adjusted
    )
    assert min(counters(product)) >= 0


def pending_types(aggregate):
    return [event.event_type for event in aggregate.pending_events]


def state(aggregate):
    """Everything but the queue of unsaved events."""
    return {name: value for name, value in vars(aggregate).items() if name != "_pending"}


# --- Product: create -----------------------------------------------------------------------------


def test_create_records_the_product_with_a_two_place_price_and_its_initial_stock():
    product = new_product(stock=7, price="12.5")

    assert pending_types(product) == [events.PRODUCT_CREATED, events.STOCK_ADDED]
    created, added = (event.payload for event in product.pending_events)
    assert created == {"product_id": "p1", "name": "Product p1", "price": "12.50"}
    assert added == {"product_id": "p1", "quantity": 7, "idempotency_key": ""}
    assert (product.name, product.price, product.version) == ("Product p1", "12.50", 2)
    assert counters(product) == (7, 0, 0, 7)


def test_create_without_initial_stock_records_no_stock_event():
    product = new_product(stock=0)

    assert pending_types(product) == [events.PRODUCT_CREATED]
    assert counters(product) == (0, 0, 0, 0)


def test_create_refuses_an_existing_product():
    product = new_product()

    with pytest.raises(ProductAlreadyExists, match="p1"):
        product.create(name="Again", price=Decimal("1.00"), initial_stock=0)

    assert product.name == "Product p1"
    assert len(product.pending_events) == 2


@pytest.mark.parametrize("price", ["0", "0.00", "-1.00"])
def test_create_refuses_a_price_that_is_not_positive(price):
    product = Product("p1")

    with pytest.raises(InventoryError, match="price"):
        product.create(name="Free", price=Decimal(price), initial_stock=5)

    assert product.pending_events == []
    assert not product.exists


# --- Product: add_stock --------------------------------------------------------------------------


def test_add_stock_needs_an_existing_product():
    with pytest.raises(ProductNotFound, match="ghost"):
        Product("ghost").add_stock(quantity=5)


@pytest.mark.parametrize("quantity", [0, -3])
def test_add_stock_needs_a_positive_quantity(quantity):
    product = new_product(stock=4)

    with pytest.raises(InventoryError, match="quantity"):
        product.add_stock(quantity=quantity)

    assert counters(product) == (4, 0, 0, 4)
    assert len(product.pending_events) == 2


def test_add_stock_makes_units_available_and_received():
    product = new_product(stock=4)

    product.add_stock(quantity=6, idempotency_key="delivery-1")

    assert counters(product) == (10, 0, 0, 10)
    assert product.pending_events[-1].payload["idempotency_key"] == "delivery-1"


# --- Product: reserve, release, sell -------------------------------------------------------------


def test_reserve_moves_units_from_available_to_reserved():
    product = new_product(stock=10)

    product.reserve(reservation_id="r1", quantity=4)

    assert counters(product) == (6, 4, 0, 10)
    assert product.pending_events[-1].event_type == events.STOCK_RESERVED
    assert product.pending_events[-1].payload == {
        "product_id": "p1",
        "reservation_id": "r1",
        "quantity": 4,
    }


def test_reserve_may_take_every_available_unit():
    product = new_product(stock=3)

    product.reserve(reservation_id="r1", quantity=3)

    assert counters(product) == (0, 3, 0, 3)


def test_reserve_raises_insufficient_stock_when_short_and_changes_nothing():
    product = new_product(stock=3)

    with pytest.raises(InsufficientStock, match="requested 4, available 3"):
        product.reserve(reservation_id="r1", quantity=4)

    assert counters(product) == (3, 0, 0, 3)
    assert pending_types(product) == [events.PRODUCT_CREATED, events.STOCK_ADDED]


def test_reserve_needs_an_existing_product_and_a_positive_quantity():
    with pytest.raises(ProductNotFound):
        Product("ghost").reserve(reservation_id="r1", quantity=1)
    with pytest.raises(InventoryError, match="quantity"):
        new_product().reserve(reservation_id="r1", quantity=0)


def test_release_moves_reserved_units_back_to_available():
    product = new_product(stock=10)
    product.reserve(reservation_id="r1", quantity=4)

    product.release(reservation_id="r1", quantity=4)

    assert counters(product) == (10, 0, 0, 10)
    assert product.pending_events[-1].event_type == events.STOCK_RELEASED


def test_sell_moves_reserved_units_to_sold():
    product = new_product(stock=10)
    product.reserve(reservation_id="r1", quantity=4)

    product.sell(reservation_id="r1", quantity=4)

    assert counters(product) == (6, 0, 4, 10)
    assert product.pending_events[-1].event_type == events.STOCK_SOLD


@pytest.mark.parametrize("command", ["release", "sell"])
def test_release_and_sell_refuse_more_than_is_reserved(command):
    product = new_product(stock=10)
    product.reserve(reservation_id="r1", quantity=2)
    before = len(product.pending_events)

    with pytest.raises(InventoryError, match="not reserved"):
        getattr(product, command)(reservation_id="r1", quantity=3)

    assert counters(product) == (8, 2, 0, 10)
    assert len(product.pending_events) == before


@pytest.mark.parametrize("command", ["release", "sell"])
def test_release_and_sell_refuse_when_nothing_is_reserved(command):
    product = new_product(stock=10)

    with pytest.raises(InventoryError, match="not reserved"):
        getattr(product, command)(reservation_id="r1", quantity=1)


@pytest.mark.parametrize("seed", range(5))
def test_units_stay_balanced_and_never_negative_after_any_sequence(seed):
    rng = random.Random(seed)
    product = new_product(stock=5)
    expected_received = 5
    for step in range(200):
        command = rng.choice(["add", "adjust", "reserve", "release", "sell"])
        quantity = rng.randint(1, 6)
        try:
            if command == "add":
                product.add_stock(quantity=quantity)
                expected_received += quantity
            elif command == "adjust":
                product.adjust_stock(quantity=rng.choice([-1, 1]) * quantity, reason="recount")
            elif command == "reserve":
                product.reserve(reservation_id=f"r{step}", quantity=quantity)
            elif command == "release":
                product.release(reservation_id=f"r{step}", quantity=quantity)
            else:
                product.sell(reservation_id=f"r{step}", quantity=quantity)
        except InventoryError:
            pass
        assert_balanced(product)

    assert product.received == expected_received
    assert product.version == len(product.pending_events)


# --- Product: price, name, status ---------------------------------------------------------------


def test_change_price_records_the_new_and_previous_price_and_why():
    product = new_product(price="12.50")

    product.change_price(price=Decimal("9.9"), reason="summer sale")

    assert product.price == "9.90"
    assert product.pending_events[-1].event_type == events.PRODUCT_PRICE_CHANGED
    assert product.pending_events[-1].payload == {
        "product_id": "p1",
        "price": "9.90",
        "previous_price": "12.50",
        "reason": "summer sale",
    }


def test_setting_the_price_or_name_a_product_has_records_nothing():
    product = new_product(price="12.50")
    before = len(product.pending_events)

    product.change_price(price=Decimal("12.5"))
    product.rename(name=" Product p1 ")

    assert len(product.pending_events) == before


@pytest.mark.parametrize("price", ["0", "-0.01"])
def test_change_price_refuses_a_price_that_is_not_positive(price):
    product = new_product(price="12.50")

    with pytest.raises(InventoryError, match="price"):
        product.change_price(price=Decimal(price))

    assert product.price == "12.50"


def test_rename_records_the_trimmed_new_and_previous_name():
    product = new_product()

    product.rename(name="  Blue widget ", reason="typo")

    assert product.name == "Blue widget"
    assert product.pending_events[-1].payload == {
        "product_id": "p1",
        "name": "Blue widget",
        "previous_name": "Product p1",
        "reason": "typo",
    }


def test_rename_refuses_a_blank_name():
    product = new_product()

    with pytest.raises(InventoryError, match="blank"):
        product.rename(name="   ")

    assert product.name == "Product p1"


@pytest.mark.parametrize("command", ["change_price", "rename", "discontinue", "reinstate"])
def test_catalogue_commands_need_an_existing_product(command):
    arguments = {"change_price": {"price": Decimal("1.00")}, "rename": {"name": "x"}}
    with pytest.raises(ProductNotFound, match="ghost"):
        getattr(Product("ghost"), command)(**arguments.get(command, {}))


def test_a_discontinued_product_refuses_new_reservations_and_keeps_what_it_holds():
    product = new_product(stock=10)
    product.reserve(reservation_id="r1", quantity=4)

    product.discontinue(reason="supplier stopped")

    assert (product.discontinued, product.available_for_sale) == (True, 0)
    assert product.pending_events[-1].payload == {"product_id": "p1", "reason": "supplier stopped"}
    with pytest.raises(ProductDiscontinued, match="p1"):
        product.reserve(reservation_id="r2", quantity=1)
    product.sell(reservation_id="r1", quantity=4)
    assert counters(product) == (6, 0, 4, 10)


def test_discontinuing_twice_or_restoring_a_product_on_sale_records_nothing():
    product = new_product()
    product.reinstate()
    product.discontinue()
    before = len(product.pending_events)

    product.discontinue()

    assert len(product.pending_events) == before
    assert pending_types(product)[-1] == events.PRODUCT_DISCONTINUED


def test_a_restored_product_takes_reservations_again():
    product = new_product(stock=5)
    product.discontinue()

    product.reinstate(reason="back in the range")

    assert pending_types(product)[-1] == events.PRODUCT_RESTORED
    assert product.available_for_sale == 5
    product.reserve(reservation_id="r1", quantity=5)
    assert counters(product) == (0, 5, 0, 5)


# --- Product: adjust_stock -----------------------------------------------------------------------


def test_adjust_stock_moves_available_units_and_counts_the_adjustment():
    product = new_product(stock=10)
    product.reserve(reservation_id="r1", quantity=3)

    product.adjust_stock(quantity=-2, reason="damaged", note="dropped", idempotency_key="k1")
    product.adjust_stock(quantity=5, reason="found")

    assert counters(product) == (10, 3, 0, 10)
    assert product.adjusted == 3
    assert_balanced(product)
    assert product.pending_events[-2].payload == {
        "product_id": "p1",
        "quantity": -2,
        "reason": "damaged",
        "note": "dropped",
        "idempotency_key": "k1",
    }


def test_adjust_stock_may_take_every_available_unit_but_never_reserved_ones():
    product = new_product(stock=10)
    product.reserve(reservation_id="r1", quantity=4)
    product.adjust_stock(quantity=-6, reason="lost")
    before = len(product.pending_events)

    with pytest.raises(AdjustmentPastZero, match="cannot remove 1 units, 0 available"):
        product.adjust_stock(quantity=-1, reason="lost")

    assert counters(product) == (0, 4, 0, 10)
    assert len(product.pending_events) == before


@pytest.mark.parametrize(
    ("quantity", "reason", "message"),
    [(0, "recount", "not be 0"), (1, "gift", "reason must be one of")],
)
def test_adjust_stock_refuses_zero_units_and_unknown_reasons(quantity, reason, message):
    product = new_product(stock=10)

    with pytest.raises(InventoryError, match=message):
        product.adjust_stock(quantity=quantity, reason=reason)

    assert product.adjusted == 0


def test_adjust_stock_needs_an_existing_product():
    with pytest.raises(ProductNotFound):
        Product("ghost").adjust_stock(quantity=1, reason="found")


def test_a_discontinued_product_may_still_be_adjusted_and_restocked():
    product = new_product(stock=10)
    product.discontinue()

    product.adjust_stock(quantity=-3, reason="damaged")
    product.add_stock(quantity=2)

    assert counters(product) == (9, 0, 0, 12)
    assert_balanced(product)


# --- Reservation ---------------------------------------------------------------------------------


LINES = [
    {"product_id": "p1", "quantity": 2, "unit_price": "12.50"},
    {"product_id": "p2", "quantity": 3, "unit_price": "0.10"},
]


def reserved_reservation(reservation_id="r1"):
    reservation = Reservation(reservation_id)
    reservation.reserved(lines=[dict(line) for line in LINES])
    return reservation


def failed_reservation(reservation_id="r1"):
    reservation = Reservation(reservation_id)
    reservation.failed(
        reason="insufficient_stock",
        details=[{"product_id": "p1", "requested": 5, "available": 1}],
    )
    return reservation


def test_a_new_reservation_is_new_and_holds_nothing():
    reservation = Reservation("r1")

    assert reservation.status == Reservation.NEW
    assert reservation.held_lines == []
    assert reservation.version == 0


def test_reserved_records_the_lines_and_the_total_amount():
    reservation = reserved_reservation()

    assert reservation.status == Reservation.RESERVED
    assert reservation.lines == LINES
    [event] = reservation.pending_events
    assert event.event_type == events.INVENTORY_RESERVED
    assert event.payload == {"reservation_id": "r1", "lines": LINES, "total_amount": "25.30"}


def test_total_amount_is_the_sum_of_unit_price_times_quantity():
    reservation = Reservation("r1")

    reservation.reserved(
        lines=[
            {"product_id": "a", "quantity": 3, "unit_price": "0.33"},
            {"product_id": "b", "quantity": 1, "unit_price": "1000.01"},
            {"product_id": "c", "quantity": 7, "unit_price": "2.50"},
        ]
    )

    # 3 * 0.33 + 1 * 1000.01 + 7 * 2.50, exactly (no float rounding)
    assert reservation.total_amount == "1018.50"


def test_held_lines_leave_out_the_price():
    reservation = reserved_reservation()

    assert reservation.held_lines == [
        {"product_id": "p1", "quantity": 2},
        {"product_id": "p2", "quantity": 3},
    ]


def test_failed_records_the_reason_and_details():
    reservation = failed_reservation()

    assert reservation.status == Reservation.FAILED
    assert reservation.reason == "insufficient_stock"
    assert reservation.details == [{"product_id": "p1", "requested": 5, "available": 1}]
    assert pending_types(reservation) == [events.INVENTORY_RESERVATION_FAILED]


def test_a_reserved_reservation_can_be_committed_with_its_lines():
    reservation = reserved_reservation()

    reservation.committed()

    assert reservation.status == Reservation.COMMITTED
    event = reservation.pending_events[-1]
    assert event.event_type == events.INVENTORY_COMMITTED
    assert event.payload == {"reservation_id": "r1", "lines": reservation.held_lines}


def test_a_reserved_reservation_can_be_released_with_its_lines():
    reservation = reserved_reservation()

    reservation.released()

    assert reservation.status == Reservation.RELEASED
    event = reservation.pending_events[-1]
    assert event.event_type == events.INVENTORY_RELEASED
    assert event.payload == {"reservation_id": "r1", "lines": reservation.held_lines}


def test_a_new_reservation_can_be_released_holding_nothing():
    reservation = Reservation("r1")

    reservation.released()

    assert reservation.status == Reservation.RELEASED
    assert reservation.pending_events[-1].payload == {"reservation_id": "r1", "lines": []}


def test_a_failed_reservation_cannot_be_committed():
    reservation = failed_reservation()

    with pytest.raises(ReservationStateError, match="is failed"):
        reservation.committed()

    assert reservation.status == Reservation.FAILED


def test_a_failed_reservation_cannot_be_released():
    with pytest.raises(ReservationStateError):
        failed_reservation().released()


def test_a_new_reservation_cannot_be_committed():
    with pytest.raises(ReservationStateError, match="is new"):
        Reservation("r1").committed()


def test_releasing_twice_raises_reservation_state_error():
    reservation = reserved_reservation()
    reservation.released()

    with pytest.raises(ReservationStateError, match="is released"):
        reservation.released()

    assert len(reservation.pending_events) == 2


def test_a_committed_reservation_cannot_be_released_or_committed_again():
    reservation = reserved_reservation()
    reservation.committed()

    with pytest.raises(ReservationStateError):
        reservation.released()
    with pytest.raises(ReservationStateError):
        reservation.committed()

    assert reservation.status == Reservation.COMMITTED


@pytest.mark.parametrize("decide", ["reserved", "failed"])
def test_a_reservation_is_decided_only_once(decide):
    reservation = reserved_reservation() if decide == "reserved" else failed_reservation()

    with pytest.raises(ReservationStateError):
        reservation.reserved(lines=LINES)
    with pytest.raises(ReservationStateError):
        reservation.failed(reason="unknown_product", details=[])

    assert len(reservation.pending_events) == 1


# --- snapshots -----------------------------------------------------------------------------------


def through_json(snapshot):
    """The snapshot as it reads back from the database's JSON column."""
    return json.loads(json.dumps(snapshot))


def test_product_snapshot_and_restore_give_an_equal_state():
    product = new_product(stock=10, price="3.99")
    product.reserve(reservation_id="r1", quantity=4)
    product.sell(reservation_id="r1", quantity=1)
    product.adjust_stock(quantity=-2, reason="damaged")
    product.change_price(price=Decimal("4.50"))
    product.discontinue()

    restored = Product("p1")
    restored.restore(through_json(product.snapshot()))
    restored.version = product.version

    assert state(restored) == state(product)
    assert counters(restored) == (4, 3, 1, 10)
    assert (restored.adjusted, restored.price, restored.discontinued) == (-2, "4.50", True)


@pytest.mark.parametrize("outcome", ["reserved", "failed", "released", "committed"])
def test_reservation_snapshot_and_restore_give_an_equal_state(outcome):
    reservation = failed_reservation() if outcome == "failed" else reserved_reservation()
    if outcome == "released":
        reservation.released()
    if outcome == "committed":
        reservation.committed()

    restored = Reservation("r1")
    restored.restore(through_json(reservation.snapshot()))
    restored.version = reservation.version

    assert state(restored) == state(reservation)
    assert restored.status == outcome


def test_snapshot_holds_no_identity_or_unsaved_events():
    snapshot = new_product().snapshot()

    assert set(snapshot) == {
        "name",
        "price",
        "discontinued",
        "available",
        "reserved",
        "sold",
        "received",
        "adjusted",
    }

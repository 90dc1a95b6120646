"""Reserving and releasing stock over HTTP (staff): all lines or none, each reservation
once; errors write nothing."""

import pytest

from eventstore.models import Event
from inventory import events
from inventory.services import stock_commit, stock_release, stock_reserve
from tests.inventory.endpoints import RELEASE_URL, RESERVE_URL, reserve_body, restock_url

pytestmark = pytest.mark.django_db

# --- POST /api/inventory/reserve/ ----------------------------------------------------------------


def test_reserve_answers_200_with_the_reserved_lines(staff_client, make_product, stock_of):
    make_product("p1", stock=10, price="12.50")
    make_product("p2", stock=10, price="0.99")

    response = staff_client.post(
        RESERVE_URL, reserve_body("order-1", ("p2", 1), ("p1", 2)), format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "reservation_id": "order-1",
        "lines": [
            {"product_id": "p1", "quantity": 2, "unit_price": "12.50"},
            {"product_id": "p2", "quantity": 1, "unit_price": "0.99"},
        ],
    }
    assert stock_of("p1") == (8, 2, 0, 10)
    assert stock_of("p2") == (9, 1, 0, 10)


def test_reserve_correlates_its_events_with_the_reservation_id(staff_client, make_product):
    make_product("p1", stock=10)

    staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 2)), format="json")

    reserved = Event.objects.filter(
        event_type__in=[events.INVENTORY_RESERVED, events.STOCK_RESERVED]
    )
    assert reserved.count() == 2
    assert {event.metadata["correlation_id"] for event in reserved} == {"order-1"}


def test_reserve_when_short_answers_409_with_details_and_reserves_nothing(
    staff_client, make_product, stock_of
):
    make_product("p1", stock=10)
    make_product("p2", stock=1)

    response = staff_client.post(
        RESERVE_URL, reserve_body("order-1", ("p1", 2), ("p2", 5)), format="json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "reason": "insufficient_stock",
        "details": [{"product_id": "p2", "requested": 5, "available": 1}],
    }
    assert stock_of("p1") == (10, 0, 0, 10)
    assert stock_of("p2") == (1, 0, 0, 1)


def test_reserve_repeated_returns_the_first_success_and_writes_nothing(
    staff_client, make_product, stock_of, event_count
):
    make_product("p1", stock=10)
    make_product("p2", stock=10)
    first = staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 2)), format="json")
    count = event_count()

    again = staff_client.post(
        RESERVE_URL, reserve_body("order-1", ("p1", 3), ("p2", 1)), format="json"
    )

    assert again.status_code == 200
    assert again.json() == first.json()
    assert event_count() == count
    assert stock_of("p1") == (8, 2, 0, 10)
    assert stock_of("p2") == (10, 0, 0, 10)


def test_reserve_repeated_returns_the_first_failure_even_after_a_restock(
    staff_client, make_product, stock_of, event_count
):
    make_product("p1", stock=1)
    first = staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 3)), format="json")
    staff_client.post(restock_url("p1"), {"quantity": 10}, format="json")
    count = event_count()

    again = staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 3)), format="json")

    assert (first.status_code, again.status_code) == (409, 409)
    assert again.json() == first.json()
    assert event_count() == count
    assert stock_of("p1") == (11, 0, 0, 11)


def test_reserve_after_the_reservation_was_released_repeats_the_first_answer_and_holds_nothing(
    staff_client, make_product, stock_of, event_count
):
    make_product("p1", stock=10)
    first = staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 2)), format="json")
    staff_client.post(RELEASE_URL, {"reservation_id": "order-1"}, format="json")
    count = event_count()

    again = staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 2)), format="json")

    assert (again.status_code, again.json()) == (200, first.json())
    assert event_count() == count
    assert stock_of("p1") == (10, 0, 0, 10)


def test_reserve_of_an_id_released_before_anything_was_reserved_answers_409_released(
    staff_client, make_product, stock_of, event_count
):
    make_product("p1", stock=10)
    stock_release(reservation_id="order-1", missing_ok=True)
    count = event_count()

    response = staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 2)), format="json")

    assert response.status_code == 409
    assert response.json() == {"success": False, "reason": "released", "details": []}
    assert event_count() == count
    assert stock_of("p1") == (10, 0, 0, 10)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ((("p1", 1), ("ghost", 2)), "Unknown product(s): ghost."),
        ((("p1", 1), ("p1", 2)), "Each product may appear once; repeated: p1."),
    ],
    ids=["unknown product", "duplicate product"],
)
def test_reserve_lines_the_service_cannot_take_answer_422_naming_items_and_write_nothing(
    staff_client, make_product, event_count, lines, message
):
    make_product("p1", stock=10)
    count = event_count()

    response = staff_client.post(RESERVE_URL, reserve_body("order-1", *lines), format="json")

    assert response.status_code == 422
    assert response.json() == {"items": [message]}
    assert event_count() == count


@pytest.mark.parametrize(
    "body",
    [
        reserve_body("order-1"),
        reserve_body("order-1", ("p1", 0)),
        reserve_body("order-1", ("p1", -2)),
        reserve_body("order-1", ("p1", "two")),
        reserve_body("order-1", ("bad id!", 1)),
        {"reservation_id": "order-1", "items": "p1"},
        {"reservation_id": "order-1", "items": [{"product_id": "p1"}]},
        {"reservation_id": "order-1"},
        {"reservation_id": "order-1", "items": [{"product_id": "p1", "quantity": 1}] * 101},
    ],
    ids=[
        "no items",
        "quantity 0",
        "negative quantity",
        "quantity not a number",
        "bad product id",
        "items not a list",
        "line without quantity",
        "items missing",
        "too many lines",
    ],
)
def test_reserve_with_bad_items_answers_400_naming_items_and_writes_nothing(
    staff_client, make_product, event_count, body
):
    make_product("p1", stock=10)
    count = event_count()

    response = staff_client.post(RESERVE_URL, body, format="json")

    assert response.status_code == 400
    assert "items" in response.json()
    assert event_count() == count


def test_reserve_names_the_duplicate_and_unknown_products(staff_client, make_product):
    make_product("p1", stock=10)

    duplicate = staff_client.post(
        RESERVE_URL, reserve_body("order-1", ("p1", 1), ("p1", 2)), format="json"
    )
    unknown = staff_client.post(
        RESERVE_URL, reserve_body("order-2", ("p1", 1), ("ghost", 2)), format="json"
    )

    assert "p1" in duplicate.json()["items"][0]
    assert "ghost" in unknown.json()["items"][0]


@pytest.mark.parametrize("reservation_id", ["", "bad id!", "x" * 65, None])
def test_reserve_with_a_bad_reservation_id_answers_400(
    staff_client, make_product, event_count, reservation_id
):
    make_product("p1", stock=10)
    count = event_count()
    body = reserve_body("order-1", ("p1", 1)) | {"reservation_id": reservation_id}

    response = staff_client.post(RESERVE_URL, body, format="json")

    assert response.status_code == 400
    assert "reservation_id" in response.json()
    assert event_count() == count


def test_reserve_is_forbidden_to_customers(customer_client, make_product, event_count):
    make_product("p1", stock=10)
    count = event_count()

    response = customer_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 1)), format="json")

    assert response.status_code == 403
    assert event_count() == count


def test_reserve_is_refused_to_anonymous_callers(anonymous_client):
    response = anonymous_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 1)), format="json")

    assert response.status_code == 401


# --- POST /api/inventory/release/ ----------------------------------------------------------------


def test_release_answers_200_and_returns_the_units(staff_client, make_product, stock_of):
    make_product("p1", stock=10)
    staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 3)), format="json")

    response = staff_client.post(RELEASE_URL, {"reservation_id": "order-1"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert stock_of("p1") == (10, 0, 0, 10)


def test_releasing_twice_answers_200_and_changes_nothing(
    staff_client, make_product, stock_of, event_count
):
    make_product("p1", stock=10)
    staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 3)), format="json")
    staff_client.post(RELEASE_URL, {"reservation_id": "order-1"}, format="json")
    count = event_count()

    response = staff_client.post(RELEASE_URL, {"reservation_id": "order-1"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert event_count() == count
    assert stock_of("p1") == (10, 0, 0, 10)


def test_releasing_an_unknown_reservation_answers_404_and_writes_nothing(staff_client, event_count):
    response = staff_client.post(RELEASE_URL, {"reservation_id": "ghost"}, format="json")

    assert response.status_code == 404
    assert "ghost" in response.json()["detail"]
    assert event_count() == 0


@pytest.mark.parametrize(
    "others_hold_units", [True, False], ids=["others hold units", "nothing else reserved"]
)
def test_releasing_a_committed_reservation_answers_409_and_writes_nothing(
    staff_client, make_product, stock_of, event_count, others_hold_units
):
    make_product("p1", stock=10)
    staff_client.post(RESERVE_URL, reserve_body("order-1", ("p1", 3)), format="json")
    stock_commit(reservation_id="order-1")
    if others_hold_units:
        staff_client.post(RESERVE_URL, reserve_body("order-2", ("p1", 4)), format="json")
    before, count = stock_of("p1"), event_count()

    response = staff_client.post(RELEASE_URL, {"reservation_id": "order-1"}, format="json")

    assert response.status_code == 409
    assert "detail" in response.json()
    assert event_count() == count
    assert stock_of("p1") == before


@pytest.mark.parametrize("body", [{}, {"reservation_id": ""}, {"reservation_id": "bad id!"}])
def test_release_with_a_bad_reservation_id_answers_400(staff_client, body):
    response = staff_client.post(RELEASE_URL, body, format="json")

    assert response.status_code == 400
    assert "reservation_id" in response.json()


def test_release_is_forbidden_to_customers(customer_client, make_product, stock_of):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="order-1", items=[{"product_id": "p1", "quantity": 3}])

    response = customer_client.post(RELEASE_URL, {"reservation_id": "order-1"}, format="json")

    assert response.status_code == 403
    assert stock_of("p1") == (7, 3, 0, 10)

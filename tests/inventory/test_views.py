"""The inventory HTTP API: each endpoint's answers per CONTRACT.md; errors write nothing."""

import json

import pytest
from rest_framework.pagination import PageNumberPagination

from eventstore.models import Event
from inventory import events
from inventory.services import stock_commit, stock_release, stock_reserve

pytestmark = pytest.mark.django_db

LIST_URL = "/api/inventory/"
RESERVE_URL = "/api/inventory/reserve/"
RELEASE_URL = "/api/inventory/release/"


def detail_url(product_id):
    return f"{LIST_URL}{product_id}/"


def restock_url(product_id):
    return f"{LIST_URL}{product_id}/restock/"


def product_body(product_id="p1", **overrides):
    return {"product_id": product_id, "name": "Blue widget", "price": "12.50", **overrides}


def reserve_body(reservation_id="order-1", *items):
    return {
        "reservation_id": reservation_id,
        "items": [
            {"product_id": product_id, "quantity": quantity} for product_id, quantity in items
        ],
    }


def listed_ids(response):
    assert response.status_code == 200
    return [item["product_id"] for item in response.json()["results"]]


@pytest.fixture
def event_count():
    """A function giving the number of stored events."""
    return Event.objects.count


# --- POST /api/inventory/ ------------------------------------------------------------------------


def test_create_answers_201_with_the_product(staff_client, stock_of):
    response = staff_client.post(
        LIST_URL, product_body(price="12.5", initial_stock=7), format="json"
    )

    assert response.status_code == 201
    assert response.json() == {
        "product_id": "p1",
        "name": "Blue widget",
        "price": "12.50",
        "available_stock": 7,
        "reserved_stock": 0,
        "sold_stock": 0,
    }
    assert stock_of("p1") == (7, 0, 0, 7)


def test_create_without_initial_stock_starts_at_zero(staff_client):
    response = staff_client.post(LIST_URL, product_body(), format="json")

    assert response.status_code == 201
    assert response.json()["available_stock"] == 0


def test_create_records_the_staff_user_as_actor(staff_client, staff_user):
    staff_client.post(LIST_URL, product_body(initial_stock=1), format="json")

    actors = {event.metadata["actor"] for event in Event.objects.all()}
    assert actors == {f"user:{staff_user.pk}"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (product_body("bad id!"), "product_id"),
        (product_body(""), "product_id"),
        (product_body("x" * 65), "product_id"),
        (product_body("reserve"), "product_id"),
        (product_body("release"), "product_id"),
        (product_body(price="0"), "price"),
        (product_body(price="0.00"), "price"),
        (product_body(price="-5.00"), "price"),
        (product_body(price="1.234"), "price"),
        (product_body(price="cheap"), "price"),
        (product_body(initial_stock=-1), "initial_stock"),
        (product_body(initial_stock="many"), "initial_stock"),
        ({"product_id": "p1", "price": "1.00"}, "name"),
        ({"product_id": "p1", "name": "No price"}, "price"),
        ({"name": "No id", "price": "1.00"}, "product_id"),
    ],
    ids=[
        "bad id",
        "empty id",
        "long id",
        "id reserve",
        "id release",
        "price 0",
        "price 0.00",
        "negative price",
        "three decimals",
        "price not a number",
        "negative stock",
        "stock not a number",
        "missing name",
        "missing price",
        "missing id",
    ],
)
def test_create_with_bad_input_answers_400_naming_the_field_and_writes_nothing(
    staff_client, event_count, body, field
):
    response = staff_client.post(LIST_URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert event_count() == 0


def test_create_accepts_the_longest_allowed_id(staff_client):
    product_id = "A-z_9" + "x" * 59

    response = staff_client.post(LIST_URL, product_body(product_id), format="json")

    assert response.status_code == 201
    assert response.json()["product_id"] == product_id


def test_create_of_an_existing_product_answers_409_and_writes_nothing(
    staff_client, make_product, event_count
):
    make_product("p1", stock=5)
    count = event_count()

    response = staff_client.post(LIST_URL, product_body(initial_stock=3), format="json")

    assert response.status_code == 409
    assert "p1" in response.json()["product_id"][0]
    assert event_count() == count


def test_create_is_forbidden_to_customers(customer_client, event_count):
    response = customer_client.post(LIST_URL, product_body(), format="json")

    assert response.status_code == 403
    assert "detail" in response.json()
    assert event_count() == 0


def test_create_is_refused_to_anonymous_callers(anonymous_client, event_count):
    response = anonymous_client.post(LIST_URL, product_body(), format="json")

    assert response.status_code == 401
    assert "detail" in response.json()
    assert event_count() == 0


# --- GET /api/inventory/ -------------------------------------------------------------------------


def test_list_shows_every_product_with_its_stock_in_a_page(customer_client, make_product):
    make_product("b", stock=3, price="1.00", name="Banana")
    make_product("a", stock=0, price="2.00", name="Apple")

    response = customer_client.get(LIST_URL)

    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [
            {
                "product_id": "a",
                "name": "Apple",
                "price": "2.00",
                "available_stock": 0,
                "reserved_stock": 0,
                "sold_stock": 0,
            },
            {
                "product_id": "b",
                "name": "Banana",
                "price": "1.00",
                "available_stock": 3,
                "reserved_stock": 0,
                "sold_stock": 0,
            },
        ],
    }


def test_list_is_paginated(customer_client, make_product, monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    for product_id in ("a", "b", "c"):
        make_product(product_id)

    first = customer_client.get(LIST_URL).json()
    second = customer_client.get(first["next"]).json()

    assert (first["count"], len(first["results"]), first["previous"]) == (3, 2, None)
    assert [item["product_id"] for item in second["results"]] == ["c"]
    assert second["next"] is None
    assert second["previous"] is not None


def test_list_filters_by_name_contains_ignoring_case(customer_client, make_product):
    make_product("p1", name="Blue Widget")
    make_product("p2", name="red widget")
    make_product("p3", name="Gadget")

    response = customer_client.get(LIST_URL, {"name": "WIDGET"})

    assert listed_ids(response) == ["p1", "p2"]


def test_list_filters_by_in_stock(customer_client, make_product):
    make_product("plenty", stock=5)
    make_product("none", stock=0)
    make_product("all-reserved", stock=2)
    stock_reserve(reservation_id="r1", items=[{"product_id": "all-reserved", "quantity": 2}])

    in_stock = customer_client.get(LIST_URL, {"in_stock": "true"})
    out_of_stock = customer_client.get(LIST_URL, {"in_stock": "false"})

    assert listed_ids(in_stock) == ["plenty"]
    assert listed_ids(out_of_stock) == ["all-reserved", "none"]


def test_an_unrecognised_in_stock_value_answers_400_naming_the_filter(customer_client):
    response = customer_client.get(LIST_URL, {"in_stock": "maybe"})

    assert response.status_code == 400
    assert "in_stock" in response.json()


def test_list_combines_filters(customer_client, make_product):
    make_product("p1", stock=5, name="Blue widget")
    make_product("p2", stock=0, name="Red widget")
    make_product("p3", stock=5, name="Gadget")

    response = customer_client.get(LIST_URL, {"name": "widget", "in_stock": "true"})

    assert listed_ids(response) == ["p1"]


def test_list_is_refused_to_anonymous_callers(anonymous_client):
    assert anonymous_client.get(LIST_URL).status_code == 401


# --- GET /api/inventory/{product_id}/ ------------------------------------------------------------


def test_detail_answers_the_product_with_its_stock(customer_client, make_product):
    make_product("p1", stock=10, price="3.00", name="Widget")
    stock_reserve(reservation_id="r1", items=[{"product_id": "p1", "quantity": 4}])
    stock_commit(reservation_id="r1")
    stock_reserve(reservation_id="r2", items=[{"product_id": "p1", "quantity": 1}])

    response = customer_client.get(detail_url("p1"))

    assert response.status_code == 200
    assert response.json() == {
        "product_id": "p1",
        "name": "Widget",
        "price": "3.00",
        "available_stock": 5,
        "reserved_stock": 1,
        "sold_stock": 4,
    }


def test_detail_of_an_unknown_product_answers_404(customer_client):
    response = customer_client.get(detail_url("ghost"))

    assert response.status_code == 404
    assert "detail" in response.json()


# --- POST /api/inventory/{product_id}/restock/ ---------------------------------------------------


def test_restock_answers_200_with_the_product(staff_client, make_product, stock_of):
    make_product("p1", stock=2)

    response = staff_client.post(restock_url("p1"), {"quantity": 5}, format="json")

    assert response.status_code == 200
    assert response.json()["available_stock"] == 7
    assert response.json()["product_id"] == "p1"
    assert stock_of("p1") == (7, 0, 0, 7)


def test_restock_repeated_with_the_same_idempotency_key_adds_once(
    staff_client, make_product, stock_of, event_count
):
    make_product("p1", stock=2)
    first = staff_client.post(
        restock_url("p1"), {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY="delivery-1"
    )
    count = event_count()

    again = staff_client.post(
        restock_url("p1"), {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY="delivery-1"
    )

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert event_count() == count
    assert stock_of("p1") == (7, 0, 0, 7)


def test_restock_with_a_reused_key_and_another_quantity_answers_422(
    staff_client, make_product, stock_of, event_count
):
    make_product("p1", stock=2)
    staff_client.post(
        restock_url("p1"), {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY="delivery-1"
    )
    count = event_count()

    response = staff_client.post(
        restock_url("p1"), {"quantity": 6}, format="json", HTTP_IDEMPOTENCY_KEY="delivery-1"
    )

    assert response.status_code == 422
    assert "delivery-1" in response.json()["detail"]
    assert event_count() == count
    assert stock_of("p1") == (7, 0, 0, 7)


@pytest.mark.parametrize("key", ["", "   ", "k" * 256], ids=["empty", "blank", "too long"])
def test_restock_with_an_empty_or_too_long_key_answers_400(
    staff_client, make_product, event_count, key
):
    make_product("p1", stock=2)
    count = event_count()

    response = staff_client.post(
        restock_url("p1"), {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert event_count() == count


def test_restock_accepts_a_key_of_the_longest_allowed_length(staff_client, make_product):
    make_product("p1", stock=2)

    response = staff_client.post(
        restock_url("p1"), {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255
    )

    assert response.status_code == 200


@pytest.mark.parametrize("quantity", [0, -1, 1_000_001, "five", None, 2.5])
def test_restock_with_a_bad_quantity_answers_400_naming_it(
    staff_client, make_product, event_count, quantity
):
    make_product("p1", stock=2)
    count = event_count()

    response = staff_client.post(restock_url("p1"), {"quantity": quantity}, format="json")

    assert response.status_code == 400
    assert "quantity" in response.json()
    assert event_count() == count


def test_restock_accepts_the_largest_allowed_quantity(staff_client, make_product):
    make_product("p1", stock=0)

    response = staff_client.post(restock_url("p1"), {"quantity": 1_000_000}, format="json")

    assert response.status_code == 200
    assert response.json()["available_stock"] == 1_000_000


@pytest.mark.parametrize("key", [None, "delivery-1"])
def test_restock_of_an_unknown_product_answers_404(staff_client, event_count, key):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}

    response = staff_client.post(restock_url("ghost"), {"quantity": 5}, format="json", **headers)

    assert response.status_code == 404
    assert "ghost" in response.json()["detail"]
    assert event_count() == 0


def test_restock_is_forbidden_to_customers(customer_client, make_product, stock_of):
    make_product("p1", stock=2)

    response = customer_client.post(restock_url("p1"), {"quantity": 5}, format="json")

    assert response.status_code == 403
    assert stock_of("p1") == (2, 0, 0, 2)


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


# --- malformed and oversized bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    "url", [LIST_URL, restock_url("p1"), RESERVE_URL, RELEASE_URL], ids=lambda url: url
)
def test_malformed_json_answers_400_and_writes_nothing(
    staff_client, make_product, event_count, url
):
    make_product("p1", stock=10)
    count = event_count()

    response = staff_client.post(url, '{"reservation_id": ', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert event_count() == count


@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null"])
def test_a_json_body_that_is_not_an_object_answers_400(
    staff_client, make_product, event_count, body
):
    make_product("p1", stock=10)
    count = event_count()

    response = staff_client.post(RESERVE_URL, body, content_type="application/json")

    assert response.status_code == 400
    assert event_count() == count


def test_an_oversized_body_answers_413_and_writes_nothing(
    staff_client, make_product, event_count, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    make_product("p1", stock=10)
    count = event_count()
    body = json.dumps(reserve_body("order-1", ("p1", 1)) | {"padding": "x" * 2000})

    response = staff_client.post(RESERVE_URL, body, content_type="application/json")

    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert event_count() == count


# --- schema and browsable API --------------------------------------------------------------------


@pytest.fixture
def schema(staff_client):
    response = staff_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/api/inventory/", "post", {"201", "400", "403", "409"}),
        ("/api/inventory/", "get", {"200"}),
        ("/api/inventory/{product_id}/", "get", {"200", "404"}),
        ("/api/inventory/{product_id}/restock/", "post", {"200", "400", "403", "404", "422"}),
        ("/api/inventory/reserve/", "post", {"200", "400", "403", "409"}),
        ("/api/inventory/release/", "post", {"200", "400", "403", "404", "409"}),
    ],
)
def test_schema_documents_each_endpoint_with_its_response_codes(schema, path, method, codes):
    assert codes <= set(schema["paths"][path][method]["responses"])


def test_schema_documents_the_list_filters_and_page(schema):
    parameters = {p["name"] for p in schema["paths"]["/api/inventory/"]["get"]["parameters"]}

    assert {"name", "in_stock", "page"} <= parameters


def test_schema_documents_the_restock_idempotency_key_header(schema):
    [header] = [
        p
        for p in schema["paths"]["/api/inventory/{product_id}/restock/"]["post"]["parameters"]
        if p["in"] == "header"
    ]

    assert header["name"] == "Idempotency-Key"
    assert header.get("required", False) is False


@pytest.mark.parametrize(
    "path",
    [
        "/api/inventory/{product_id}/restock/",
        "/api/inventory/reserve/",
        "/api/inventory/release/",
    ],
)
def test_schema_shows_no_list_parameters_on_command_actions(schema, path):
    parameters = {p["name"] for p in schema["paths"][path]["post"].get("parameters", [])}

    assert not parameters & {"name", "in_stock", "page"}


def test_schema_documents_the_shortage_answer_of_reserve(schema):
    conflict = schema["paths"]["/api/inventory/reserve/"]["post"]["responses"]["409"]
    reference = conflict["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]

    assert {"success", "reason", "details"} <= set(component["properties"])


def test_browsable_api_renders_the_product_list(client, staff_user, make_product):
    make_product("p1", name="Blue widget")
    client.force_login(staff_user)

    response = client.get(LIST_URL, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Blue widget" in response.content.decode()


def test_browsable_api_renders_a_product_and_the_command_forms(client, staff_user, make_product):
    make_product("p1", name="Blue widget")
    client.force_login(staff_user)

    detail = client.get(detail_url("p1"), HTTP_ACCEPT="text/html")
    reserve = client.get(RESERVE_URL, HTTP_ACCEPT="text/html")

    assert detail.status_code == 200
    assert "Blue widget" in detail.content.decode()
    # GET is not allowed on a command, but the page with its POST form still renders.
    assert reserve.status_code == 405
    assert reserve["Content-Type"].startswith("text/html")

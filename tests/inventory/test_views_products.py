"""Products over HTTP: staff create and restock them, everyone signed in lists and reads
them with their stock; errors write nothing."""

import pytest
from rest_framework.pagination import PageNumberPagination

from eventstore.models import Event
from inventory.services import stock_commit, stock_reserve
from tests.inventory.endpoints import LIST_URL, detail_url, listed_ids, product_body, restock_url

pytestmark = pytest.mark.django_db

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
        "status": "active",
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
                "status": "active",
                "available_stock": 0,
                "reserved_stock": 0,
                "sold_stock": 0,
            },
            {
                "product_id": "b",
                "name": "Banana",
                "price": "1.00",
                "status": "active",
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
        "status": "active",
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

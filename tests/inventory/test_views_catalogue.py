"""The catalogue over HTTP: staff change a product's price and name, discontinue and restore
it, correct its stock and read its history; bad input writes nothing."""

import pytest

from eventstore.models import Event
from inventory import events
from inventory.services import product_discontinue, stock_adjust
from tests.inventory.endpoints import (
    LIST_URL,
    RESERVE_URL,
    adjust_url,
    detail_url,
    history_url,
    listed_ids,
    reserve_body,
    restore_url,
)

pytestmark = pytest.mark.django_db


# --- PATCH /api/inventory/{product_id}/ ----------------------------------------------------------


def test_patch_changes_price_and_name_and_records_who_and_why(
    staff_client, staff_user, make_product, store
):
    make_product("p1", price="12.50", name="Blue widgt")

    response = staff_client.patch(
        detail_url("p1"),
        {"price": "14.00", "name": "Blue widget", "reason": "new price list"},
        format="json",
    )

    assert response.status_code == 200
    assert (response.json()["price"], response.json()["name"]) == ("14.00", "Blue widget")
    changed = store.read_stream(events.PRODUCT, "p1")[-2:]
    assert [event.event_type for event in changed] == [
        events.PRODUCT_PRICE_CHANGED,
        events.PRODUCT_RENAMED,
    ]
    assert {event.payload["reason"] for event in changed} == {"new price list"}
    assert {event.metadata["actor"] for event in changed} == {f"user:{staff_user.pk}"}


def test_patch_of_only_the_price_keeps_the_name(staff_client, make_product):
    make_product("p1", price="12.50", name="Widget")

    response = staff_client.patch(detail_url("p1"), {"price": "9.99"}, format="json")

    assert (response.json()["price"], response.json()["name"]) == ("9.99", "Widget")


@pytest.mark.parametrize(
    "body", [{"price": "12.5", "name": "Widget"}, {}, {"reason": "nothing else"}], ids=str
)
def test_patch_with_nothing_new_answers_the_product_and_writes_nothing(
    staff_client, make_product, event_count, body
):
    make_product("p1", price="12.50", name="Widget")
    count = event_count()

    response = staff_client.patch(detail_url("p1"), body, format="json")

    assert response.status_code == 200
    assert (response.json()["price"], response.json()["name"]) == ("12.50", "Widget")
    assert event_count() == count


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "-1.00"}, "price"),
        ({"price": "0"}, "price"),
        ({"price": 9.99}, "price"),
        ({"price": "1.234"}, "price"),
        ({"name": "   "}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"price": "2.00", "reason": "x" * 201}, "reason"),
        ({"price": "2.00", "reason": 7}, "reason"),
        ({"name": 7}, "name"),
    ],
    ids=str,
)
def test_patch_with_bad_input_answers_400_naming_the_field_and_writes_nothing(
    staff_client, make_product, event_count, body, field
):
    make_product("p1")
    count = event_count()

    response = staff_client.patch(detail_url("p1"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert event_count() == count


def test_patch_of_an_unknown_product_answers_404(staff_client, event_count):
    response = staff_client.patch(detail_url("ghost"), {"price": "1.00"}, format="json")

    assert response.status_code == 404
    assert event_count() == 0


def test_patch_and_delete_are_forbidden_to_customers(customer_client, make_product, event_count):
    make_product("p1")
    count = event_count()

    patched = customer_client.patch(detail_url("p1"), {"price": "1.00"}, format="json")
    deleted = customer_client.delete(detail_url("p1"))

    assert (patched.status_code, deleted.status_code) == (403, 403)
    assert event_count() == count


def test_put_is_not_offered(staff_client, make_product):
    make_product("p1")

    response = staff_client.put(
        detail_url("p1"), {"price": "1.00", "name": "Widget"}, format="json"
    )

    assert response.status_code == 405


# --- DELETE /api/inventory/{product_id}/ and POST .../restore/ -----------------------------------


def test_delete_discontinues_the_product_and_deletes_nothing(staff_client, make_product, store):
    make_product("p1", stock=5)
    count = Event.objects.count()

    response = staff_client.delete(f"{detail_url('p1')}?reason=supplier+stopped")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["available_stock"]) == ("discontinued", 5)
    assert Event.objects.count() == count + 1
    assert store.read_stream(events.PRODUCT, "p1")[-1].payload == {
        "product_id": "p1",
        "reason": "supplier stopped",
    }


def test_delete_twice_answers_200_and_writes_once(staff_client, make_product, event_count):
    make_product("p1")
    staff_client.delete(detail_url("p1"))
    count = event_count()

    response = staff_client.delete(detail_url("p1"))

    assert response.status_code == 200
    assert event_count() == count


def test_delete_with_a_too_long_reason_answers_400_and_writes_nothing(
    staff_client, make_product, event_count
):
    make_product("p1")
    count = event_count()

    response = staff_client.delete(f"{detail_url('p1')}?reason={'x' * 201}")

    assert response.status_code == 400
    assert "reason" in response.json()
    assert event_count() == count


@pytest.mark.parametrize("method", ["delete", "restore"])
def test_discontinue_and_restore_of_an_unknown_product_answer_404(staff_client, method):
    if method == "delete":
        response = staff_client.delete(detail_url("ghost"))
    else:
        response = staff_client.post(restore_url("ghost"), {}, format="json")

    assert response.status_code == 404
    assert not Event.objects.exists()


def test_restore_puts_the_product_back_on_sale(staff_client, make_product, store):
    make_product("p1")
    product_discontinue(product_id="p1")

    response = staff_client.post(restore_url("p1"), {"reason": "back in range"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert store.read_stream(events.PRODUCT, "p1")[-1].event_type == events.PRODUCT_RESTORED


def test_restore_is_forbidden_to_customers(customer_client, make_product, event_count):
    make_product("p1")
    product_discontinue(product_id="p1")
    count = event_count()

    assert customer_client.post(restore_url("p1"), {}, format="json").status_code == 403
    assert event_count() == count


def test_customers_no_longer_see_a_discontinued_product_staff_still_do(
    customer_client, staff_client, make_product
):
    make_product("a")
    make_product("b")
    product_discontinue(product_id="b")

    assert listed_ids(customer_client.get(LIST_URL)) == ["a"]
    assert customer_client.get(detail_url("b")).status_code == 404
    assert listed_ids(staff_client.get(LIST_URL)) == ["a", "b"]
    assert staff_client.get(detail_url("b")).json()["status"] == "discontinued"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "discontinued"}, ["b"]),
        ({"status": "active"}, ["a", "c"]),
        ({"discontinued": "true"}, ["b"]),
        ({"discontinued": "false"}, ["a", "c"]),
        ({"discontinued": "true", "in_stock": "true"}, []),
    ],
    ids=str,
)
def test_staff_filter_products_by_status(staff_client, make_product, query, expected):
    make_product("a")
    make_product("b", stock=0)
    make_product("c")
    product_discontinue(product_id="b")

    assert listed_ids(staff_client.get(LIST_URL, query)) == expected


@pytest.mark.parametrize("query", [{"status": "gone"}, {"discontinued": "yes"}], ids=str)
def test_an_unrecognised_status_filter_answers_400_naming_it(staff_client, query):
    response = staff_client.get(LIST_URL, query)

    assert response.status_code == 400
    assert set(response.json()) == set(query)


def test_reserving_a_discontinued_product_answers_the_shortage_naming_it(
    staff_client, make_product, stock_of
):
    make_product("p1", stock=5)
    make_product("p2", stock=5)
    product_discontinue(product_id="p2")

    response = staff_client.post(
        RESERVE_URL, reserve_body("r1", ("p1", 1), ("p2", 2)), format="json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "reason": "insufficient_stock",
        "details": [{"product_id": "p2", "requested": 2, "available": 0}],
    }
    assert stock_of("p1") == (5, 0, 0, 5)


# --- POST /api/inventory/{product_id}/adjust/ ----------------------------------------------------


def test_adjust_corrects_available_stock_and_answers_the_product(
    staff_client, make_product, stock_of, store
):
    make_product("p1", stock=10)

    response = staff_client.post(
        adjust_url("p1"), {"quantity": -3, "reason": "damaged", "note": "water"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["available_stock"] == 7
    assert stock_of("p1") == (7, 0, 0, 10)
    assert store.read_stream(events.PRODUCT, "p1")[-1].payload["note"] == "water"


def test_adjust_past_zero_answers_409_naming_the_quantity_and_writes_nothing(
    staff_client, make_product, event_count, stock_of
):
    make_product("p1", stock=2)
    count = event_count()

    response = staff_client.post(
        adjust_url("p1"), {"quantity": -3, "reason": "lost"}, format="json"
    )

    assert response.status_code == 409
    assert "quantity" in response.json()
    assert event_count() == count
    assert stock_of("p1") == (2, 0, 0, 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": 0, "reason": "recount"}, "quantity"),
        ({"quantity": "many", "reason": "recount"}, "quantity"),
        ({"quantity": 1_000_001, "reason": "recount"}, "quantity"),
        ({"reason": "recount"}, "quantity"),
        ({"quantity": 1, "reason": "gift"}, "reason"),
        ({"quantity": 1}, "reason"),
        ({"quantity": 1, "reason": "found", "note": "x" * 501}, "note"),
        ({"quantity": 1, "reason": "found", "note": 5}, "note"),
    ],
    ids=str,
)
def test_adjust_with_bad_input_answers_400_naming_the_field_and_writes_nothing(
    staff_client, make_product, event_count, body, field
):
    make_product("p1")
    count = event_count()

    response = staff_client.post(adjust_url("p1"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert event_count() == count


def test_adjust_repeated_with_the_same_key_adjusts_once_and_another_body_answers_422(
    staff_client, make_product, event_count, stock_of
):
    make_product("p1", stock=5)
    body = {"quantity": -1, "reason": "damaged"}
    first = staff_client.post(adjust_url("p1"), body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    count = event_count()

    again = staff_client.post(adjust_url("p1"), body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    other = staff_client.post(
        adjust_url("p1"), {**body, "quantity": -2}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )

    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 422)
    assert again.json() == first.json()
    assert event_count() == count
    assert stock_of("p1") == (4, 0, 0, 5)


def test_adjust_of_an_unknown_product_answers_404(staff_client):
    response = staff_client.post(
        adjust_url("ghost"), {"quantity": 1, "reason": "found"}, format="json"
    )

    assert response.status_code == 404
    assert not Event.objects.exists()


def test_adjust_is_forbidden_to_customers(customer_client, make_product, event_count):
    make_product("p1")
    count = event_count()

    response = customer_client.post(
        adjust_url("p1"), {"quantity": 1, "reason": "found"}, format="json"
    )

    assert response.status_code == 403
    assert event_count() == count


# --- GET /api/inventory/{product_id}/history/ ----------------------------------------------------


def test_history_lists_the_products_changes_in_order_with_who(
    staff_client, staff_user, make_product
):
    make_product("p1", stock=3, metadata={"actor": "user:1"})
    staff_client.patch(detail_url("p1"), {"price": "2.00"}, format="json")
    stock_adjust(product_id="p1", quantity=-1, reason="lost")
    staff_client.delete(detail_url("p1"))
    make_product("p2")

    response = staff_client.get(history_url("p1"))

    assert response.status_code == 200
    listed = response.json()["results"]
    assert [event["event_type"] for event in listed] == [
        events.PRODUCT_CREATED,
        events.STOCK_ADDED,
        events.PRODUCT_PRICE_CHANGED,
        events.STOCK_ADJUSTED,
        events.PRODUCT_DISCONTINUED,
    ]
    assert [event["version"] for event in listed] == [1, 2, 3, 4, 5]
    assert listed[2]["metadata"]["actor"] == f"user:{staff_user.pk}"
    assert listed[2]["payload"]["previous_price"] == "12.50"


def test_history_is_paged(staff_client, make_product):
    make_product("p1", stock=1)
    for _ in range(3):
        stock_adjust(product_id="p1", quantity=1, reason="found")

    first = staff_client.get(history_url("p1"), {"page_size": 3}).json()
    second = staff_client.get(first["next"]).json()

    assert [event["version"] for event in first["results"] + second["results"]] == [1, 2, 3, 4, 5]


def test_history_is_for_staff_and_of_known_products(staff_client, customer_client, make_product):
    make_product("p1")

    assert customer_client.get(history_url("p1")).status_code == 403
    assert staff_client.get(history_url("ghost")).status_code == 404

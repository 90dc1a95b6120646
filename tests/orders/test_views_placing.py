"""Placing an order over HTTP: who may place one, what input it takes, and how an
Idempotency-Key makes a repeat harmless."""

import pytest

from eventstore.models import Event
from orders import events
from orders.services import order_id_for_key
from tests.orders.endpoints import LIST_URL, assert_replayed, detail_url, post

pytestmark = pytest.mark.django_db

# --- placing an order ----------------------------------------------------------------------------


def test_a_customer_places_an_order_and_gets_201_with_its_location(
    customer_client, product, run_after_commit
):
    user = customer_client.user

    with run_after_commit():
        response = post(customer_client)

    assert response.status_code == 201
    order = response.json()
    order_id = order["order_id"]
    assert response["Location"] == f"/api/orders/{order_id}/"
    assert "Idempotent-Replayed" not in response
    assert order == {
        "order_id": order_id,
        "customer_id": str(user.pk),
        "status": "pending",  # the saga runs once the request's transaction commits
        "items": [{"product_id": "p1", "quantity": 2, "unit_price": None}],
        "total_amount": None,
        "cancel_reason": "",
        "cancellation_note": "",
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }
    created = Event.objects.get(aggregate_type=events.ORDER, event_type=events.ORDER_CREATED)
    assert created.metadata == {
        "actor": f"user:{user.pk}",
        "correlation_id": order_id,
        "request_id": response["X-Request-ID"],
    }
    assert customer_client.get(detail_url(order_id)).json()["status"] == "completed"


@pytest.mark.django_db(transaction=True)
def test_the_201_shows_how_far_the_saga_got_once_the_order_committed(customer_client, product):
    response = post(customer_client)

    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["total_amount"]) == ("completed", "25.00")
    assert order["items"] == [{"product_id": "p1", "quantity": 2, "unit_price": "12.50"}]


def test_the_payment_token_defaults_to_the_approving_token(customer_client, product):
    response = post(customer_client, payment_token=None)

    assert response.status_code == 201
    created = Event.objects.get(event_type=events.ORDER_CREATED)
    assert created.payload["payment_method"] == events.payment_method_of("tok_visa_success")


def test_staff_place_an_order_for_the_customer_they_name(staff_client, product):
    response = post(staff_client, customer_id="c-42")

    assert response.status_code == 201
    assert response.json()["customer_id"] == "c-42"


def test_staff_without_a_customer_id_order_for_themselves(staff_client, product):
    response = post(staff_client)

    assert response.json()["customer_id"] == str(staff_client.user.pk)


def test_a_customer_may_name_themselves(customer_client, product):
    response = post(customer_client, customer_id=str(customer_client.user.pk))

    assert response.status_code == 201


def test_a_customer_naming_another_customer_is_forbidden_and_nothing_is_written(
    customer_client, product, event_count
):
    before = event_count()

    response = post(customer_client, customer_id="someone-else")

    assert response.status_code == 403
    assert response.json() == {"detail": "Customers place orders for themselves only."}
    assert event_count() == before


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("items", {"items": None}),
        ("items", {"items": []}),
        ("items", {"items": "p1"}),
        ("items", {"items": [{"product_id": "p1", "quantity": 0}]}),
        ("items", {"items": [{"product_id": "p1", "quantity": 1001}]}),
        ("items", {"items": [{"product_id": "p1", "quantity": "two"}]}),
        ("items", {"items": [{"product_id": "p1"}]}),
        ("items", {"items": [{"product_id": "bad id!", "quantity": 1}]}),
        ("items", {"items": [{"product_id": "p" * 65, "quantity": 1}]}),
        ("items", {"items": [{"product_id": f"p{n}", "quantity": 1} for n in range(101)]}),
        ("customer_id", {"customer_id": "bad id!"}),
        ("customer_id", {"customer_id": ""}),
        ("payment_token", {"payment_token": "t" * 65}),
    ],
    ids=[
        "no items",
        "empty items",
        "items not a list",
        "zero quantity",
        "quantity too large",
        "quantity not a number",
        "quantity missing",
        "bad product id",
        "product id too long",
        "too many lines",
        "bad customer id",
        "empty customer id",
        "token too long",
    ],
)
def test_bad_input_answers_400_naming_the_field_and_writes_nothing(
    staff_client, product, event_count, field, overrides
):
    before = event_count()

    response = post(staff_client, **overrides)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert event_count() == before


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [{"product_id": "p1", "quantity": 1}, {"product_id": "p1", "quantity": 2}],
            "Product 'p1' appears on two lines",
        ),
        (
            [{"product_id": "p1", "quantity": 1}, {"product_id": "ghost", "quantity": 1}],
            "Unknown product(s): ghost",
        ),
    ],
    ids=["duplicate product", "unknown product"],
)
def test_lines_the_order_cannot_take_answer_422_on_items_and_write_nothing(
    customer_client, product, event_count, items, message
):
    before = event_count()

    response = post(customer_client, items=items)

    assert response.status_code == 422
    assert response.json() == {"items": [message]}
    assert event_count() == before


def test_malformed_json_answers_400_and_writes_nothing(customer_client, product, event_count):
    before = event_count()

    response = customer_client.post(LIST_URL, '{"items": [', content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()
    assert event_count() == before


def test_placing_an_order_is_refused_to_anonymous_callers(anonymous_client, product, event_count):
    before = event_count()

    response = post(anonymous_client)

    assert response.status_code == 401
    assert event_count() == before


# --- idempotency ---------------------------------------------------------------------------------


def test_the_same_key_and_body_again_answers_201_with_the_same_order_and_writes_nothing(
    customer_client, product, event_count
):
    first = post(customer_client, key="order-1")
    before = event_count()

    again = post(customer_client, key="order-1")

    assert_replayed(first, again, 201)
    assert event_count() == before


def test_the_keyed_order_id_is_derived_from_the_caller_and_the_key(customer_client, product):
    response = post(customer_client, key="  order-1  ")

    scope = f"user:{customer_client.user.pk}"
    assert response.json()["order_id"] == order_id_for_key(scope=scope, idempotency_key="order-1")


def test_the_same_key_with_another_body_answers_422_and_writes_nothing(
    customer_client, product, event_count
):
    post(customer_client, key="order-1")
    before = event_count()

    response = post(customer_client, key="order-1", items=[{"product_id": "p1", "quantity": 3}])

    assert response.status_code == 422
    assert "'order-1' was used for a different order" in response.json()["detail"]
    assert event_count() == before


def test_two_customers_using_the_same_key_get_two_orders(customer_client, product, staff_client):
    mine = post(customer_client, key="order-1")
    theirs = post(staff_client, key="order-1")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["order_id"] != theirs.json()["order_id"]
    assert "Idempotent-Replayed" not in theirs


@pytest.mark.parametrize("key", ["   ", "k" * 256], ids=["blank", "too long"])
def test_an_empty_or_too_long_key_answers_400_and_writes_nothing(
    customer_client, product, event_count, key
):
    before = event_count()

    response = post(customer_client, key=key)

    assert response.status_code == 400
    assert list(response.json()) == ["Idempotency-Key"]
    assert event_count() == before


@pytest.mark.parametrize(
    "key",
    ["order\x00-1", "order\x1b-1", "order\n-1", "order\x7f-1"],
    ids=["NUL", "ESC", "LF", "DEL"],
)
def test_a_key_with_a_control_character_answers_json_400_and_writes_nothing(
    customer_client, product, event_count, key
):
    before = event_count()

    response = post(customer_client, key=key)

    assert response.status_code == 400
    assert list(response.json()) == ["Idempotency-Key"]
    assert event_count() == before


def test_a_key_with_a_tab_inside_is_taken_as_http_allows(customer_client, product):
    first = post(customer_client, key="order\t1")
    again = post(customer_client, key="order\t1")

    assert_replayed(first, again, 201)


def test_a_deeply_nested_body_answers_400_and_writes_nothing(customer_client, product, event_count):
    before = event_count()
    nested = "[" * 1000 + "]" * 1000  # 2 KB that the JSON parser cannot recurse through

    response = customer_client.post(LIST_URL, nested, content_type="application/json")

    assert response.status_code == 400
    assert "nested" in response.json()["detail"]
    assert event_count() == before

"""The notifications API: staff send, customers read their own, staff read everyone's."""

import pytest

from eventstore.models import Event
from eventstore.store import NewEvent
from httpapi.caller import customer_id_for
from notifications import events
from notifications.models import SentNotification
from notifications.serializers import NotificationOutputSerializer
from notifications.services import (
    notification_deliver,
    notification_delivery_failed,
    notification_send,
    order_notify,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SEND_URL = "/api/notifications/send/"
LIST_URL = "/api/notifications/"
NOTIFICATION_FIELDS = set(NotificationOutputSerializer().fields)


def customer_url(customer_id):
    return f"/api/notifications/{customer_id}/"


def send_body(**overrides):
    return {"customer_id": "c1", "type": "promotion", "message": "Spring sale", **overrides}


def notify(customer_id, message="Hello", **fields):
    """Send a notification through the service; returns its id."""
    return notification_send(
        customer_id=customer_id, type="promotion", message=message, **fields
    ).id


# --- POST /api/notifications/send/ ---------------------------------------------------------------


def test_staff_send_answers_201_with_the_notification_id_and_records_it(staff_client):
    response = staff_client.post(SEND_URL, send_body(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert body == {"success": True, "notification_id": body["notification_id"]}
    row = SentNotification.objects.get(notification_id=body["notification_id"])
    assert (row.customer_id, row.type, row.message, row.order_id, row.channel) == (
        "c1",
        "promotion",
        "Spring sale",
        "",
        "email",
    )


@pytest.fixture
def order_of(store):
    """A function recording orders' OrderCreated for an order of the customer named."""

    def created(order_id, customer_id):
        payload = {"order_id": order_id, "customer_id": customer_id, "items": []}
        new_event = NewEvent(events.ORDER_CREATED, payload, {"correlation_id": order_id})
        store.append_to_stream(events.ORDER, order_id, [new_event])

    return created


def test_staff_send_records_who_asked_and_the_order_as_correlation(staff_client, order_of):
    order_of("o-1", "c1")
    response = staff_client.post(SEND_URL, send_body(order_id="o-1"), format="json")

    assert response.status_code == 201
    event = Event.objects.get(event_type=events.NOTIFICATION_SENT)
    assert event.payload["order_id"] == "o-1"
    assert event.metadata == {
        "actor": f"user:{staff_client.user.pk}",
        "correlation_id": "o-1",
        "request_id": response["X-Request-ID"],
    }


def test_staff_send_about_another_customers_order_answers_422_and_writes_nothing(
    staff_client, order_of
):
    order_of("o-alice", "alice")
    before = Event.objects.count()

    response = staff_client.post(
        SEND_URL, send_body(customer_id="bob", order_id="o-alice"), format="json"
    )

    assert response.status_code == 422
    assert set(response.json()) == {"order_id"}
    assert Event.objects.count() == before
    assert not SentNotification.objects.exists()


def test_staff_send_about_an_unknown_order_answers_422_and_writes_nothing(staff_client):
    response = staff_client.post(SEND_URL, send_body(order_id="o-ghost"), format="json")

    assert response.status_code == 422
    assert "order_id" in response.json()
    assert not Event.objects.filter(event_type=events.NOTIFICATION_SENT).exists()


def test_staff_send_without_an_order_records_no_correlation(staff_client):
    response = staff_client.post(SEND_URL, send_body(), format="json")

    event = Event.objects.get(event_type=events.NOTIFICATION_SENT)
    assert event.metadata == {
        "actor": f"user:{staff_client.user.pk}",
        "request_id": response["X-Request-ID"],
    }


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("customer_id", {"type": "promotion", "message": "Hi"}),
        ("customer_id", send_body(customer_id="bad id!")),
        ("customer_id", send_body(customer_id="x" * 65)),
        ("type", send_body(type="Has Spaces")),
        ("type", {"customer_id": "c1", "message": "Hi"}),
        ("message", send_body(message="")),
        ("message", send_body(message="   ")),
        ("message", send_body(message="x" * 2001)),
        ("order_id", send_body(order_id="bad id!")),
    ],
)
def test_send_answers_400_naming_the_bad_field_and_writes_nothing(staff_client, field, body):
    events_before = Event.objects.count()

    response = staff_client.post(SEND_URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Event.objects.count() == events_before
    assert not SentNotification.objects.exists()


def test_send_accepts_a_message_of_exactly_2000_characters(staff_client):
    response = staff_client.post(SEND_URL, send_body(message="x" * 2000), format="json")

    assert response.status_code == 201
    assert len(SentNotification.objects.get().message) == 2000


def test_send_answers_400_to_malformed_json_and_writes_nothing(staff_client):
    response = staff_client.post(
        SEND_URL, data='{"customer_id": "c1",', content_type="application/json"
    )

    assert response.status_code == 400
    assert "detail" in response.json()
    assert not Event.objects.exists()


def test_send_answers_400_to_a_deeply_nested_body_and_writes_nothing(staff_client):
    body = '{"customer_id": "c1", "type": "custom", "message": ' + "[" * 1000 + "]" * 1000 + "}"

    response = staff_client.post(SEND_URL, data=body, content_type="application/json")

    assert response.status_code == 400
    assert "nested" in response.json()["detail"]
    assert not Event.objects.exists()


def test_send_answers_400_to_a_body_that_is_not_an_object(staff_client):
    response = staff_client.post(SEND_URL, ["c1"], format="json")

    assert response.status_code == 400
    assert not Event.objects.exists()


def test_customers_may_not_send(customer_client):
    response = customer_client.post(SEND_URL, send_body(), format="json")

    assert response.status_code == 403
    assert "detail" in response.json()
    assert not Event.objects.exists()


def test_anonymous_callers_may_not_send(anonymous_client):
    response = anonymous_client.post(SEND_URL, send_body(), format="json")

    assert response.status_code == 401
    assert not Event.objects.exists()


# --- GET /api/notifications/{customer_id}/ -------------------------------------------------------


def test_a_customer_reads_their_own_notifications_newest_first(customer_client):
    own = customer_id_for(customer_client.user)
    first = notify(own, "first")
    order_notify(
        event_type=events.ORDER_CANCELLED,
        payload={"order_id": "o1", "customer_id": own, "reason": "out_of_stock"},
    )
    notify("someone-else", "not yours")

    response = customer_client.get(customer_url(own))

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [item["message"] for item in body] == [
        "Your order o1 was cancelled: out of stock.",
        "first",
    ]
    assert all(set(item) == NOTIFICATION_FIELDS for item in body)
    assert body[1]["notification_id"] == first
    assert body[0]["type"] == "order_cancelled"
    assert body[0]["order_id"] == "o1"
    assert body[0]["channel"] == "email"


def test_a_customer_without_notifications_gets_an_empty_list(customer_client):
    response = customer_client.get(customer_url(customer_id_for(customer_client.user)))

    assert response.status_code == 200
    assert response.json() == []


def test_another_customers_notifications_answer_404_to_a_customer(customer_client):
    other = customer_id_for(UserFactory())
    notify(other, "private")

    response = customer_client.get(customer_url(other))

    assert response.status_code == 404
    assert "detail" in response.json()
    assert "private" not in response.content.decode()


def test_staff_read_any_customers_notifications(staff_client):
    customer = customer_id_for(UserFactory())
    older = notify(customer, "older")
    newer = notify(customer, "newer")
    notify("c-other", "not theirs")

    response = staff_client.get(customer_url(customer))

    assert response.status_code == 200
    assert [item["notification_id"] for item in response.json()] == [newer, older]


def test_staff_get_an_empty_list_for_a_customer_with_no_notifications(staff_client):
    notify("c1")

    response = staff_client.get(customer_url("nobody"))

    assert response.status_code == 200
    assert response.json() == []


def test_anonymous_callers_may_not_read_a_customers_notifications(anonymous_client):
    notify("1")

    response = anonymous_client.get(customer_url("1"))

    assert response.status_code == 401


# --- GET /api/notifications/ ---------------------------------------------------------------------


def test_a_customer_lists_only_their_own_notifications(customer_client):
    own = customer_id_for(customer_client.user)
    mine = notify(own)
    notify(customer_id_for(UserFactory()))

    response = customer_client.get(LIST_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [item["notification_id"] for item in body["results"]] == [mine]
    assert body["results"][0]["customer_id"] == own


def test_a_customer_filtering_by_another_customer_sees_nothing(customer_client):
    other = customer_id_for(UserFactory())
    notify(other)

    response = customer_client.get(LIST_URL, {"customer_id": other})

    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_staff_list_every_notification_newest_first_paginated(staff_client):
    sent = [notify("c1"), notify("c2"), notify("c3")]

    response = staff_client.get(LIST_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [item["notification_id"] for item in body["results"]] == list(reversed(sent))
    assert set(body["results"][0]) == NOTIFICATION_FIELDS | {"customer_id"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"customer_id": "c2"}, {"c2-promotion", "c2-order_completed"}),
        ({"order_id": "o1"}, {"c1-order_completed"}),
        ({"type": "order_completed"}, {"c1-order_completed", "c2-order_completed"}),
        ({"customer_id": "c2", "type": "promotion"}, {"c2-promotion"}),
    ],
)
def test_staff_filter_the_list_by_customer_order_and_type(staff_client, query, expected):
    notify("c1")
    notify("c2")
    for customer, order in (("c1", "o1"), ("c2", "o2")):
        order_notify(
            event_type=events.ORDER_COMPLETED, payload={"order_id": order, "customer_id": customer}
        )

    response = staff_client.get(LIST_URL, query)

    assert response.status_code == 200
    results = response.json()["results"]
    assert {f"{item['customer_id']}-{item['type']}" for item in results} == expected


@pytest.fixture
def deliveries_of_every_status():
    """Three notifications of one customer (with an email address): one delivered, one whose
    delivery failed and will be retried, one parked. Returns {status: notification_id}."""
    customer = customer_id_for(UserFactory())
    delivered = notify(customer, "delivered")
    notification_deliver(notification_id=delivered, attempt=1)
    retried = notify(customer, "retried")
    notification_delivery_failed(
        notification_id=retried, attempt=1, error=OSError("down"), parked=False
    )
    parked = notify(customer, "parked")
    notification_delivery_failed(
        notification_id=parked, attempt=5, error=OSError("down"), parked=True
    )
    return {"delivered": delivered, "pending": retried, "failed": parked}


def test_notifications_show_their_delivery_status_and_time(
    staff_client, deliveries_of_every_status
):
    customer = SentNotification.objects.get(pk=deliveries_of_every_status["delivered"]).customer_id

    body = staff_client.get(customer_url(customer)).json()

    shown = {item["notification_id"]: item for item in body}
    for status, notification_id in deliveries_of_every_status.items():
        assert shown[notification_id]["delivery_status"] == status
    delivered = Event.objects.get(event_type=events.NOTIFICATION_DELIVERED)
    assert shown[delivered.aggregate_id]["delivered_at"] is not None
    assert shown[deliveries_of_every_status["failed"]]["delivered_at"] is None


@pytest.mark.parametrize("status", ["pending", "delivered", "failed"])
def test_staff_filter_the_list_by_delivery_status(staff_client, deliveries_of_every_status, status):
    response = staff_client.get(LIST_URL, {"delivery_status": status})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["notification_id"] for item in results] == [deliveries_of_every_status[status]]
    assert results[0]["delivery_status"] == status


def test_an_unknown_delivery_status_filter_answers_400(staff_client):
    response = staff_client.get(LIST_URL, {"delivery_status": "lost"})

    assert response.status_code == 400
    assert "delivery_status" in response.json()


def test_anonymous_callers_may_not_list_notifications(anonymous_client):
    response = anonymous_client.get(LIST_URL)

    assert response.status_code == 401


# --- schema --------------------------------------------------------------------------------------


@pytest.fixture
def schema_paths(staff_client):
    """The paths of the OpenAPI schema as served."""
    response = staff_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()["paths"]


def test_schema_names_the_customer_list_operation(schema_paths):
    for_customer = schema_paths["/api/notifications/{customer_id}/"]["get"]

    assert for_customer["operationId"] == "notifications_for_customer"
    assert "404" in for_customer["responses"]


def test_schema_documents_the_customer_list_as_the_plain_array_it_returns(
    schema_paths, customer_client
):
    for_customer = schema_paths["/api/notifications/{customer_id}/"]["get"]
    served = customer_client.get(customer_url(customer_id_for(customer_client.user))).json()

    assert isinstance(served, list)
    documented = for_customer["responses"]["200"]["content"]["application/json"]["schema"]
    assert documented.get("type") == "array", documented
    # The endpoint neither pages nor filters, so the schema must not offer query parameters.
    assert [p["name"] for p in for_customer["parameters"] if p["in"] == "query"] == []


def test_schema_documents_the_delivery_status_filter_with_its_choices(schema_paths):
    parameters = schema_paths["/api/notifications/"]["get"]["parameters"]

    [status] = [p for p in parameters if p["name"] == "delivery_status"]
    assert status["schema"]["enum"] == ["delivered", "failed", "pending"]


def test_schema_documents_send_as_201_or_400_without_query_parameters(schema_paths):
    send = schema_paths["/api/notifications/send/"]["post"]

    assert {"201", "400"} <= set(send["responses"])
    assert not any(param["in"] == "query" for param in send.get("parameters", []))

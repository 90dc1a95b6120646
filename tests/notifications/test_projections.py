"""SentNotification read model: one row per notification with its delivery, newest first, equal
to a rebuild; OrderOwner: the customer of each order."""

import pytest

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import rebuild, verify
from eventstore.store import NewEvent
from notifications import events
from notifications.models import OrderOwner, SentNotification
from notifications.services import (
    notification_deliver,
    notification_delivery_failed,
    notification_send,
    order_notify,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

COLUMNS = (
    "notification_id",
    "customer_id",
    "order_id",
    "type",
    "channel",
    "message",
    "sent_at",
    "position",
    "delivery_status",
    "delivery_attempts",
    "delivered_at",
    "delivery_error",
)


@pytest.fixture
def projection():
    return get_projections(["notifications.sent"])[0]


def send_a_mix():
    """Staff messages and order outcomes for two customers, with repeats that add nothing."""
    notification_send(customer_id="c1", type="promotion", message="Sale")
    order_notify(
        event_type=events.ORDER_CONFIRMED,
        payload={"order_id": "o1", "customer_id": "c1", "total_amount": "10.00"},
    )
    order_notify(
        event_type=events.ORDER_CONFIRMED,
        payload={"order_id": "o1", "customer_id": "c1", "total_amount": "10.00"},
    )
    order_notify(
        event_type=events.ORDER_CANCELLED,
        payload={"order_id": "o2", "customer_id": "c2", "reason": "out_of_stock"},
    )
    order_notify(event_type=events.ORDER_COMPLETED, payload={"order_id": "o1", "customer_id": "c1"})
    notification_send(customer_id="c2", type="promotion", message="Bye", notification_id="n9")
    notification_send(customer_id="c2", type="promotion", message="Bye", notification_id="n9")


def deliver_some(customer_id):
    """Notifications of a customer with an email address: delivered at once, delivered after a
    failure, parked, and retried by staff after being parked and then delivered."""
    for name in ("d1", "d2", "d3", "d4"):
        notification_send(customer_id=customer_id, type="news", message=name, notification_id=name)
    notification_deliver(notification_id="d1", attempt=1)
    notification_delivery_failed(notification_id="d2", attempt=1, error=OSError("x"), parked=False)
    notification_deliver(notification_id="d2", attempt=2)
    notification_delivery_failed(notification_id="d3", attempt=1, error=OSError("x"), parked=True)
    notification_delivery_failed(notification_id="d4", attempt=1, error=OSError("x"), parked=True)
    notification_deliver(notification_id="d4", attempt=1)


def rows():
    return list(SentNotification.objects.values(*COLUMNS))


def test_each_notification_sent_gives_one_row_matching_its_event():
    send_a_mix()

    sent = Event.objects.filter(event_type=events.NOTIFICATION_SENT).order_by("-position")
    assert len(sent) == 5
    assert rows() == [
        {
            "notification_id": event.aggregate_id,
            "customer_id": event.payload["customer_id"],
            "order_id": event.payload["order_id"],
            "type": event.payload["type"],
            "channel": event.payload["channel"],
            "message": event.payload["message"],
            "sent_at": event.recorded_at,
            "position": event.position,
            "delivery_status": "pending",
            "delivery_attempts": 0,
            "delivered_at": None,
            "delivery_error": "",
        }
        for event in sent
    ]


def test_each_delivery_event_updates_the_row_as_the_aggregate_counts_it():
    deliver_some(str(UserFactory().pk))

    by_id = {row["notification_id"]: row for row in rows()}
    delivered_at = dict(
        Event.objects.filter(event_type=events.NOTIFICATION_DELIVERED).values_list(
            "aggregate_id", "recorded_at"
        )
    )
    summary = {
        name: (row["delivery_status"], row["delivery_attempts"], row["delivery_error"])
        for name, row in by_id.items()
    }
    assert summary == {
        "d1": ("delivered", 1, ""),
        "d2": ("delivered", 2, ""),
        "d3": ("failed", 1, "OSError: x"),
        "d4": ("delivered", 2, ""),
    }
    assert {name: row["delivered_at"] for name, row in by_id.items()} == {
        "d1": delivered_at["d1"],
        "d2": delivered_at["d2"],
        "d3": None,
        "d4": delivered_at["d4"],
    }


def test_a_rebuild_replays_recordings_and_deliveries_into_the_same_rows(projection):
    deliver_some(str(UserFactory().pk))
    send_a_mix()
    before = rows()

    result = rebuild([projection])

    assert rows() == before
    assert result.events == len(Event.objects.filter(aggregate_type=events.NOTIFICATION))
    assert verify([projection])[0] == []


def test_a_rebuild_in_batches_smaller_than_a_notifications_history_gives_the_same_rows(
    projection, settings
):
    deliver_some(str(UserFactory().pk))
    before = rows()
    settings.EVENTSTORE_BATCH_SIZE = 1

    rebuild([projection])

    assert rows() == before


def test_verify_reports_a_delivery_status_changed_behind_the_projections_back(projection):
    deliver_some(str(UserFactory().pk))
    SentNotification.objects.filter(notification_id="d3").update(delivery_status="delivered")

    differences, _ = verify([projection])

    assert [(d.kind, d.key, d.fields) for d in differences] == [
        ("changed", {"notification_id": "d3"}, ["delivery_status"])
    ]


def test_rows_are_listed_newest_first_by_position():
    send_a_mix()

    positions = list(SentNotification.objects.values_list("position", flat=True))

    assert positions == sorted(positions, reverse=True)
    assert SentNotification.objects.first().notification_id == "n9"


def test_verify_finds_no_difference_between_live_rows_and_a_rebuild(projection):
    send_a_mix()

    differences, result = verify([projection])

    assert differences == []
    assert result.events == 5


def test_verify_reports_a_row_changed_behind_the_projections_back(projection):
    send_a_mix()
    SentNotification.objects.filter(notification_id="n9").update(message="tampered")

    differences, _ = verify([projection])

    assert [(d.kind, d.key, d.fields) for d in differences] == [
        ("changed", {"notification_id": "n9"}, ["message"])
    ]


def test_rebuild_keeps_every_row_identical_in_the_same_order(projection):
    send_a_mix()
    before = rows()

    result = rebuild([projection])

    assert result.events == 5
    assert rows() == before


# --- OrderOwner ----------------------------------------------------------------------------------


def test_order_owners_come_from_orders_order_created_events(store):
    for order_id, customer_id in (("o1", "c1"), ("o2", "c2")):
        payload = {"order_id": order_id, "customer_id": customer_id, "items": []}
        store.append_to_stream(events.ORDER, order_id, [NewEvent(events.ORDER_CREATED, payload)])
    # Another stream's event of the same name is not an order.
    store.append_to_stream(
        "elsewhere", "o3", [NewEvent(events.ORDER_CREATED, {"customer_id": "c3"})]
    )

    assert dict(OrderOwner.objects.values_list("order_id", "customer_id")) == {
        "o1": "c1",
        "o2": "c2",
    }

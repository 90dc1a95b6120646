"""Notification: sent once, with every field recorded, and refused without its essentials."""

import pytest

from notifications import events
from notifications.aggregates import Notification, NotificationError
from notifications.services import notification_send, notifications

FIELDS = {
    "customer_id": "c1",
    "order_id": "o1",
    "type": "order_confirmed",
    "channel": "email",
    "message": "Your order o1 is confirmed.",
}


def test_send_records_notification_sent_with_every_field():
    notification = Notification("n1")

    notification.send(**FIELDS)

    [event] = notification.pending_events
    assert event.event_type == events.NOTIFICATION_SENT
    assert event.payload == {"notification_id": "n1", **FIELDS}
    assert notification.sent is True
    assert notification.version == 1
    assert (
        notification.customer_id,
        notification.order_id,
        notification.type,
        notification.channel,
        notification.message,
    ) == ("c1", "o1", "order_confirmed", "email", "Your order o1 is confirmed.")


def test_sending_the_same_notification_twice_raises_and_records_nothing_more():
    notification = Notification("n1")
    notification.send(**FIELDS)

    with pytest.raises(NotificationError, match="n1"):
        notification.send(**FIELDS)

    assert len(notification.pending_events) == 1


@pytest.mark.django_db
def test_a_notification_loaded_from_its_stream_refuses_to_be_sent_again():
    notification_send(customer_id="c1", type="promotion", message="Hi", notification_id="n1")
    loaded = notifications.load("n1", use_snapshot=False)

    assert (loaded.sent, loaded.customer_id, loaded.message) == (True, "c1", "Hi")
    with pytest.raises(NotificationError, match="sent already"):
        loaded.send(**FIELDS)
    assert loaded.pending_events == []


@pytest.mark.parametrize("missing", ["customer_id", "type", "message"])
def test_send_without_a_required_field_raises_and_records_nothing(missing):
    notification = Notification("n1")

    with pytest.raises(NotificationError, match="required"):
        notification.send(**{**FIELDS, missing: ""})

    assert notification.pending_events == []
    assert notification.sent is False


def test_send_about_no_order_records_an_empty_order_id():
    notification = Notification("n1")

    notification.send(**{**FIELDS, "order_id": ""})

    assert notification.pending_events[0].payload["order_id"] == ""

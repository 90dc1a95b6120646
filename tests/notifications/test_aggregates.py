"""Notification: recorded once with every field, refused without its essentials, then delivered
once (after any number of failures), with state rebuilt the same from events and snapshots."""

import json

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from eventstore.aggregates import derived_event_id
from eventstore.store import NewEvent
from eventstore.upcasting import current_schema_version
from notifications import events
from notifications.aggregates import (
    ERROR_MAX_LENGTH,
    Delivery,
    Notification,
    NotificationError,
)
from notifications.events import type_in_words
from notifications.services import notification_send, notifications

FIELDS = {
    "customer_id": "c1",
    "order_id": "o1",
    "type": "order_confirmed",
    "channel": "email",
    "message": "Your order o1 is confirmed.",
    "subject": "Your order o1 is confirmed",
    "body": "Hello,\n\nYour order o1 is confirmed and paid.\n",
}


def sent(notification_id="n1"):
    """A notification recorded with FIELDS, its event already saved."""
    notification = Notification(notification_id)
    notification.send(**FIELDS)
    notification.mark_saved()
    return notification


def replayed(notification):
    """A fresh copy rebuilt from the events the notification recorded."""
    copy = Notification(notification.id)
    for version, event in enumerate(notification.pending_events, start=1):
        copy.replay_payload(version, event.event_type, event.payload)
    return copy


# --- recording -----------------------------------------------------------------------------------


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
        notification.subject,
        notification.body,
    ) == tuple(FIELDS.values())
    assert notification.delivery == Delivery(status="pending", attempts=0)


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


@pytest.mark.parametrize("missing", ["customer_id", "type", "message", "subject", "body"])
def test_send_without_a_required_field_raises_and_records_nothing(missing):
    notification = Notification("n1")

    with pytest.raises(NotificationError, match="required"):
        notification.send(**{**FIELDS, missing: ""})

    assert notification.pending_events == []
    assert notification.sent is False


def test_send_refuses_a_subject_of_more_than_one_line():
    notification = Notification("n1")

    with pytest.raises(NotificationError, match="one line"):
        notification.send(**{**FIELDS, "subject": "Bcc: someone\nelse"})

    assert notification.pending_events == []


def test_send_about_no_order_records_an_empty_order_id():
    notification = Notification("n1")

    notification.send(**{**FIELDS, "order_id": ""})

    assert notification.pending_events[0].payload["order_id"] == ""


@pytest.mark.django_db
def test_a_notification_stored_before_delivery_was_real_reads_as_delivered_with_its_message(
    store,
):
    legacy = {key: value for key, value in FIELDS.items() if key not in {"subject", "body"}}
    # As stored before delivery was real (schema version 1): no subject, no body.
    payload = {"notification_id": "n-old", **legacy}
    store.append_to_stream(
        events.NOTIFICATION,
        "n-old",
        [NewEvent(events.NOTIFICATION_SENT, payload, schema_version=1)],
    )

    loaded = notifications.load("n-old")

    assert (loaded.subject, loaded.body) == ("Order confirmed", FIELDS["message"])
    assert loaded.is_delivered


def test_new_notifications_are_recorded_at_schema_version_2():
    assert current_schema_version(events.NOTIFICATION_SENT) == 2


def test_a_type_in_words_reads_as_a_subject():
    assert type_in_words("order_confirmed") == "Order confirmed"
    assert type_in_words("promotion") == "Promotion"


# --- delivery ------------------------------------------------------------------------------------


def test_delivered_records_the_message_id_and_attempt_under_an_id_derived_from_the_notification():
    notification = sent()

    notification.delivered(message_id="<n1@example.com>", attempt=1)

    [event] = notification.pending_events
    assert event.event_type == events.NOTIFICATION_DELIVERED
    assert event.payload == {
        "notification_id": "n1",
        "message_id": "<n1@example.com>",
        "attempt": 1,
    }
    assert event.event_id == derived_event_id(
        events.NOTIFICATION, "n1", events.NOTIFICATION_DELIVERED
    )
    assert notification.is_delivered
    assert notification.delivery == Delivery(
        status="delivered", attempts=1, message_id="<n1@example.com>"
    )


def test_a_second_delivery_is_refused_and_records_nothing():
    notification = sent()
    notification.delivered(message_id="<n1@example.com>", attempt=1)

    with pytest.raises(NotificationError, match="delivered already"):
        notification.delivered(message_id="<n1@example.com>", attempt=2)

    assert len(notification.pending_events) == 1


def test_a_failure_after_the_delivery_is_refused_and_records_nothing():
    notification = sent()
    notification.delivered(message_id="<n1@example.com>", attempt=1)

    with pytest.raises(NotificationError, match="delivered already"):
        notification.delivery_failed(attempt=2, error="SMTPException: late", parked=False)

    assert len(notification.pending_events) == 1


@pytest.mark.parametrize("command", ["delivered", "delivery_failed"])
def test_a_notification_never_recorded_cannot_be_delivered_or_fail(command):
    notification = Notification("n1")
    arguments = {
        "delivered": {"message_id": "<n1@x>", "attempt": 1},
        "delivery_failed": {"attempt": 1, "error": "E: x", "parked": False},
    }[command]

    with pytest.raises(NotificationError, match="never recorded"):
        getattr(notification, command)(**arguments)

    assert notification.pending_events == []


def test_a_failure_to_be_retried_keeps_the_delivery_pending_with_its_error():
    notification = sent()

    notification.delivery_failed(attempt=1, error="SMTPServerDisconnected: gone", parked=False)

    [event] = notification.pending_events
    assert event.event_type == events.NOTIFICATION_DELIVERY_FAILED
    assert event.payload == {
        "notification_id": "n1",
        "attempt": 1,
        "error": "SMTPServerDisconnected: gone",
        "parked": False,
    }
    assert notification.delivery == Delivery(
        status="pending", attempts=1, error="SMTPServerDisconnected: gone"
    )


def test_a_parked_failure_makes_the_delivery_failed():
    notification = sent()

    notification.delivery_failed(attempt=5, error="SMTPServerDisconnected: gone", parked=True)

    assert notification.delivery.status == "failed"
    assert not notification.is_delivered


def test_a_long_error_is_trimmed():
    notification = sent()

    notification.delivery_failed(attempt=1, error="E: " + "x" * 5000, parked=False)

    assert len(notification.pending_events[0].payload["error"]) == ERROR_MAX_LENGTH


def test_a_delivery_after_failures_and_parking_counts_every_attempt_and_clears_the_error():
    notification = sent()
    notification.delivery_failed(attempt=1, error="E: one", parked=False)
    notification.delivery_failed(attempt=2, error="E: two", parked=True)

    notification.delivered(message_id="<n1@example.com>", attempt=1)

    assert notification.delivery == Delivery(
        status="delivered", attempts=3, error="", message_id="<n1@example.com>"
    )


def test_replaying_the_events_gives_the_same_state():
    notification = Notification("n1")
    notification.send(**FIELDS)
    notification.delivery_failed(attempt=1, error="E: one", parked=False)
    notification.delivered(message_id="<n1@example.com>", attempt=2)

    copy = replayed(notification)

    assert copy.snapshot() == notification.snapshot()
    assert copy.delivery == notification.delivery


def test_a_snapshot_is_json_and_restores_the_same_state():
    notification = sent()
    notification.delivery_failed(attempt=1, error="E: one", parked=True)

    state = json.loads(json.dumps(notification.snapshot(), cls=DjangoJSONEncoder))
    restored = Notification("n1")
    restored.restore(state)

    assert restored.snapshot() == notification.snapshot()
    assert restored.delivery == Delivery(status="failed", attempts=1, error="E: one")


def test_events_other_than_deliveries_leave_the_delivery_as_it_is():
    delivery = Delivery(status="pending", attempts=2, error="E: x")

    assert delivery.after(events.NOTIFICATION_SENT, {"notification_id": "n1"}) == delivery

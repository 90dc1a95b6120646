"""notification_send and order_notify: recorded once, delivered after commit, once per outcome."""

import logging

import pytest
from django.db import transaction

from eventstore.aggregates import derived_event_id
from eventstore.models import Event
from notifications import events
from notifications.aggregates import NotificationError
from notifications.models import SentNotification
from notifications.sender import get_sender
from notifications.services import notification_send, order_notify

pytestmark = pytest.mark.django_db


class RecordingSender:
    """A sender that remembers each delivery instead of making it."""

    channel = "test-channel"
    calls: list[dict] = []

    def send(self, *, notification_id, customer_id, message):
        self.calls.append(
            {"notification_id": notification_id, "customer_id": customer_id, "message": message}
        )


@pytest.fixture
def sent(settings):
    """The deliveries of a RecordingSender configured as NOTIFICATIONS_SENDER for one test.

    Changing the setting is enough: the app builds its sender anew on `setting_changed`.
    """
    get_sender()  # cache the configured sender first, so the setting change must replace it
    settings.NOTIFICATIONS_SENDER = f"{__name__}.RecordingSender"
    RecordingSender.calls = []
    return RecordingSender.calls


def sent_events():
    return list(Event.objects.filter(event_type=events.NOTIFICATION_SENT).order_by("position"))


# --- notification_send ---------------------------------------------------------------------------


def test_notification_send_records_one_event_and_one_read_model_row():
    notification = notification_send(customer_id="c1", type="promotion", message="Sale today")

    [event] = sent_events()
    assert event.aggregate_type == events.NOTIFICATION
    assert event.aggregate_id == notification.id
    assert event.payload == {
        "notification_id": notification.id,
        "customer_id": "c1",
        "order_id": "",
        "type": "promotion",
        "channel": "email",
        "message": "Sale today",
    }
    row = SentNotification.objects.get()
    assert (row.notification_id, row.customer_id, row.type, row.message, row.channel) == (
        notification.id,
        "c1",
        "promotion",
        "Sale today",
        "email",
    )
    assert (row.position, row.sent_at) == (event.position, event.recorded_at)


def test_notification_send_gives_each_call_without_an_id_a_new_notification():
    first = notification_send(customer_id="c1", type="promotion", message="Same text")
    second = notification_send(customer_id="c1", type="promotion", message="Same text")

    assert first.id != second.id
    assert SentNotification.objects.count() == 2


def test_the_channel_recorded_is_the_configured_senders(sent):
    notification_send(customer_id="c1", type="promotion", message="Hi")

    assert sent_events()[0].payload["channel"] == "test-channel"
    assert SentNotification.objects.get().channel == "test-channel"


def test_the_sender_delivers_after_commit(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notification = notification_send(customer_id="c1", type="promotion", message="Hi")
        assert sent == []  # not before the transaction commits

    assert sent == [{"notification_id": notification.id, "customer_id": "c1", "message": "Hi"}]


def test_a_repeated_notification_id_writes_nothing_and_delivers_once(
    sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = notification_send(
            customer_id="c1", type="promotion", message="Hi", notification_id="n1"
        )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = notification_send(
            customer_id="c1", type="promotion", message="Hi", notification_id="n1"
        )

    assert first.id == again.id == "n1"
    assert callbacks == []
    assert len(sent_events()) == 1
    assert SentNotification.objects.count() == 1
    assert [call["notification_id"] for call in sent] == ["n1"]


def test_a_repeated_notification_id_keeps_the_first_message():
    notification_send(customer_id="c1", type="promotion", message="First", notification_id="n1")

    again = notification_send(
        customer_id="c2", type="other", message="Second", notification_id="n1"
    )

    assert (again.customer_id, again.type, again.message) == ("c1", "promotion", "First")
    assert SentNotification.objects.get().message == "First"


def test_the_sender_does_not_run_when_the_surrounding_transaction_rolls_back(
    sent, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError, match="caller failed"),
        transaction.atomic(),
    ):
        notification_send(customer_id="c1", type="promotion", message="Hi")
        raise RuntimeError("caller failed")

    assert callbacks == []
    assert sent == []
    assert not Event.objects.exists()
    assert not SentNotification.objects.exists()


def test_the_logging_sender_logs_the_email_at_info(caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="notifications.sender")

    with django_capture_on_commit_callbacks(execute=True):
        notification = notification_send(customer_id="c1", type="promotion", message="Hello")

    [record] = [r for r in caplog.records if r.name == "notifications.sender"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"Email to customer c1 [{notification.id}]: Hello"


@pytest.mark.parametrize("missing", ["customer_id", "type", "message"])
def test_notification_send_without_a_required_field_raises_and_writes_nothing(missing):
    fields = {"customer_id": "c1", "type": "promotion", "message": "Hi", missing: ""}

    with pytest.raises(NotificationError):
        notification_send(**fields)

    assert not Event.objects.exists()


def test_metadata_lands_on_the_event():
    metadata = {"correlation_id": "o1", "causation_id": "e1", "actor": "user:7"}

    notification_send(
        customer_id="c1", type="promotion", message="Hi", order_id="o1", metadata=metadata
    )

    assert sent_events()[0].metadata == metadata


# --- order_notify --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "payload", "kind", "expected_in_message"),
    [
        (
            events.ORDER_CONFIRMED,
            {"order_id": "o1", "customer_id": "c1", "total_amount": "42.50"},
            "order_confirmed",
            ["o1", "42.50"],
        ),
        (
            events.ORDER_COMPLETED,
            {"order_id": "o1", "customer_id": "c1"},
            "order_completed",
            ["o1"],
        ),
        (
            events.ORDER_CANCELLED,
            {"order_id": "o1", "customer_id": "c1", "reason": "payment_declined"},
            "order_cancelled",
            ["o1", "payment declined"],
        ),
    ],
)
def test_order_notify_tells_the_customer_each_outcome(
    event_type, payload, kind, expected_in_message
):
    notification = order_notify(event_type=event_type, payload=payload)

    row = SentNotification.objects.get()
    assert (row.notification_id, row.customer_id, row.order_id, row.type) == (
        notification.id,
        "c1",
        "o1",
        kind,
    )
    for text in expected_in_message:
        assert text in row.message
    assert "_" not in row.message


def test_order_notify_messages_read_in_full():
    order_notify(
        event_type=events.ORDER_CONFIRMED,
        payload={"order_id": "o1", "customer_id": "c1", "total_amount": "42.50"},
    )
    order_notify(
        event_type=events.ORDER_CANCELLED,
        payload={"order_id": "o2", "customer_id": "c1", "reason": "out_of_stock"},
    )

    messages = dict(SentNotification.objects.values_list("order_id", "message"))
    assert messages == {
        "o1": "Your order o1 is confirmed. Total: 42.50.",
        "o2": "Your order o2 was cancelled: out of stock.",
    }


def test_order_notify_uses_a_notification_id_derived_from_order_and_type():
    notification = order_notify(
        event_type=events.ORDER_COMPLETED, payload={"order_id": "o1", "customer_id": "c1"}
    )

    assert notification.id == str(derived_event_id(events.NOTIFICATION, "o1", "order_completed"))


def test_order_notify_twice_for_one_order_and_outcome_records_once(
    sent, django_capture_on_commit_callbacks
):
    payload = {"order_id": "o1", "customer_id": "c1", "total_amount": "10.00"}

    with django_capture_on_commit_callbacks(execute=True):
        first = order_notify(event_type=events.ORDER_CONFIRMED, payload=payload)
        second = order_notify(event_type=events.ORDER_CONFIRMED, payload=payload)

    assert first.id == second.id
    assert len(sent_events()) == 1
    assert SentNotification.objects.count() == 1
    assert len(sent) == 1


def test_two_outcomes_of_one_order_give_two_notifications():
    payload = {"order_id": "o1", "customer_id": "c1", "total_amount": "10.00"}

    confirmed = order_notify(event_type=events.ORDER_CONFIRMED, payload=payload)
    completed = order_notify(event_type=events.ORDER_COMPLETED, payload=payload)

    assert confirmed.id != completed.id
    assert sorted(SentNotification.objects.values_list("type", flat=True)) == [
        "order_completed",
        "order_confirmed",
    ]


def test_the_same_outcome_of_two_orders_gives_two_notifications():
    for order_id in ("o1", "o2"):
        order_notify(
            event_type=events.ORDER_COMPLETED, payload={"order_id": order_id, "customer_id": "c1"}
        )

    assert SentNotification.objects.count() == 2


def test_order_notify_refuses_an_event_type_it_has_no_notification_for():
    with pytest.raises(NotificationError, match="OrderPlaced"):
        order_notify(event_type="OrderPlaced", payload={"order_id": "o1", "customer_id": "c1"})

    assert not Event.objects.exists()


def test_order_notify_puts_the_metadata_on_the_event():
    metadata = {"correlation_id": "o1", "causation_id": "e1", "actor": "service:notifications"}

    order_notify(
        event_type=events.ORDER_COMPLETED,
        payload={"order_id": "o1", "customer_id": "c1"},
        metadata=metadata,
    )

    assert sent_events()[0].metadata == metadata

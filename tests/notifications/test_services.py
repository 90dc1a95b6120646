"""notification_send and order_notify record the intent once, with the email rendered;
notification_deliver emails it once and records the delivery; failures are recorded."""

import smtplib

import pytest
from django.core import mail
from django.db import transaction

from eventstore.aggregates import derived_event_id
from eventstore.effects import TransactionOpen
from eventstore.models import Event
from notifications import events, services
from notifications.aggregates import EmailNotAccepted, NotificationError, NotificationUndeliverable
from notifications.models import SentNotification
from notifications.services import (
    customer_email,
    message_id_for,
    notification_deliver,
    notification_delivery_failed,
    notification_send,
    order_notify,
)
from tests.factories import UserFactory
from tests.notifications.email_backends import MeanwhileBackend

pytestmark = pytest.mark.django_db

ITEMS = [
    {"product_id": "keyboard", "quantity": 1, "unit_price": "89.00"},
    {"product_id": "mouse", "quantity": 2, "unit_price": "29.90"},
]


def sent_events():
    return list(Event.objects.filter(event_type=events.NOTIFICATION_SENT).order_by("position"))


def delivered_events():
    return list(Event.objects.filter(event_type=events.NOTIFICATION_DELIVERED))


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
        "subject": "Promotion",
        "body": "Sale today\n",
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
    assert (row.delivery_status, row.delivery_attempts, row.delivered_at) == ("pending", 0, None)


def test_notification_send_records_only_the_intent_and_emails_nothing(customer_id):
    notification_send(customer_id=customer_id, type="promotion", message="Sale today")

    assert [event.event_type for event in Event.objects.all()] == [events.NOTIFICATION_SENT]
    assert mail.outbox == []


def test_notification_send_gives_each_call_without_an_id_a_new_notification():
    first = notification_send(customer_id="c1", type="promotion", message="Same text")
    second = notification_send(customer_id="c1", type="promotion", message="Same text")

    assert first.id != second.id
    assert SentNotification.objects.count() == 2


def test_the_generic_email_names_the_type_in_words_and_keeps_the_message_as_written():
    notification_send(
        customer_id="c1", type="spring_sale", message="Tom & Jerry <3 our prices\nsee you"
    )

    payload = sent_events()[0].payload
    assert payload["subject"] == "Spring sale"
    # Plain text: nothing is HTML-escaped.
    assert payload["body"] == "Tom & Jerry <3 our prices\nsee you\n"


def test_a_given_subject_and_body_are_recorded_as_they_are():
    notification_send(
        customer_id="c1", type="promotion", message="Hi", subject="Hello there", body="Long text\n"
    )

    payload = sent_events()[0].payload
    assert (payload["subject"], payload["body"]) == ("Hello there", "Long text\n")


def test_a_repeated_notification_id_writes_nothing(django_capture_on_commit_callbacks):
    first = notification_send(
        customer_id="c1", type="promotion", message="Hi", notification_id="n1"
    )
    with django_capture_on_commit_callbacks() as callbacks:
        again = notification_send(
            customer_id="c1", type="promotion", message="Hi", notification_id="n1"
        )

    assert first.id == again.id == "n1"
    assert callbacks == []
    assert len(sent_events()) == 1
    assert SentNotification.objects.count() == 1


def test_a_repeated_notification_id_keeps_the_first_message():
    notification_send(customer_id="c1", type="promotion", message="First", notification_id="n1")

    again = notification_send(
        customer_id="c2", type="other", message="Second", notification_id="n1"
    )

    assert (again.customer_id, again.type, again.message) == ("c1", "promotion", "First")
    assert SentNotification.objects.get().message == "First"


def test_a_notification_recorded_in_a_transaction_that_rolls_back_is_never_emailed(
    customer_id, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError, match="caller failed"),
        transaction.atomic(),
    ):
        notification_send(customer_id=customer_id, type="promotion", message="Hi")
        raise RuntimeError("caller failed")

    assert callbacks == []
    assert mail.outbox == []
    assert not Event.objects.exists()
    assert not SentNotification.objects.exists()


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


@pytest.mark.parametrize(
    ("event_type", "subject"),
    [
        (events.ORDER_CONFIRMED, "Your order o1 is confirmed"),
        (events.ORDER_COMPLETED, "Your order o1 is complete"),
    ],
)
def test_order_notify_renders_the_email_with_the_items_and_total(event_type, subject):
    payload = {"order_id": "o1", "customer_id": "c1", "items": ITEMS, "total_amount": "148.80"}

    order_notify(event_type=event_type, payload=payload)

    recorded = sent_events()[0].payload
    assert recorded["subject"] == subject
    body = recorded["body"]
    assert "Your order o1 is " in body
    assert "  1 x keyboard at 89.00\n  2 x mouse at 29.90\n" in body
    assert "Total: 148.80" in body
    assert "\n\n\n" not in body


def test_the_cancellation_email_names_the_reason_items_and_total():
    payload = {
        "order_id": "o1",
        "customer_id": "c1",
        "items": ITEMS,
        "total_amount": "148.80",
        "reason": "card_declined",
    }

    order_notify(event_type=events.ORDER_CANCELLED, payload=payload)

    recorded = sent_events()[0].payload
    assert recorded["subject"] == "Your order o1 was cancelled"
    assert "Your order o1 was cancelled: card declined." in recorded["body"]
    assert "2 x mouse at 29.90" in recorded["body"]
    assert "Total: 148.80" in recorded["body"]


def test_the_email_of_an_order_never_priced_says_so_and_shows_no_total():
    items = [{"product_id": "monitor", "quantity": 999, "unit_price": None}]
    payload = {
        "order_id": "o1",
        "customer_id": "c1",
        "items": items,
        "total_amount": None,
        "reason": "insufficient_stock",
    }

    order_notify(event_type=events.ORDER_CANCELLED, payload=payload)

    body = sent_events()[0].payload["body"]
    assert "999 x monitor at a price not set yet" in body
    assert "Total" not in body


@pytest.mark.parametrize("event_type", [events.ORDER_CONFIRMED, events.ORDER_CANCELLED])
def test_an_order_event_stored_before_it_carried_items_still_renders(event_type):
    # As OrderConfirmed and OrderCancelled were stored before `items` was added.
    payload = {"order_id": "o1", "customer_id": "c1", "total_amount": "42.50", "reason": "x"}

    order_notify(event_type=event_type, payload=payload)

    body = sent_events()[0].payload["body"]
    assert "The items of this order are listed on the order itself." in body
    assert "o1" in body


def test_order_notify_uses_a_notification_id_derived_from_order_and_type():
    notification = order_notify(
        event_type=events.ORDER_COMPLETED, payload={"order_id": "o1", "customer_id": "c1"}
    )

    assert notification.id == str(derived_event_id(events.NOTIFICATION, "o1", "order_completed"))


def test_order_notify_twice_for_one_order_and_outcome_records_once():
    payload = {"order_id": "o1", "customer_id": "c1", "total_amount": "10.00"}

    first = order_notify(event_type=events.ORDER_CONFIRMED, payload=payload)
    second = order_notify(event_type=events.ORDER_CONFIRMED, payload=payload)

    assert first.id == second.id
    assert len(sent_events()) == 1
    assert SentNotification.objects.count() == 1


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


# --- notification_deliver ------------------------------------------------------------------------


def test_deliver_emails_the_customer_the_recorded_email_and_records_the_delivery(
    customer, customer_id
):
    notification = notification_send(
        customer_id=customer_id, type="promotion", message="Spring sale", notification_id="n1"
    )
    metadata = {"causation_id": "e1", "actor": "service:notifications"}

    notification_deliver(notification_id="n1", attempt=1, metadata=metadata)

    [email] = mail.outbox
    assert email.to == ["ada@example.com"]
    assert email.from_email == "orders@localhost"
    assert (email.subject, email.body) == (notification.subject, notification.body)
    assert email.message()["Message-ID"] == "<n1@localhost>"
    [delivered] = delivered_events()
    assert delivered.payload == {
        "notification_id": "n1",
        "message_id": "<n1@localhost>",
        "attempt": 1,
    }
    assert delivered.metadata == metadata
    row = SentNotification.objects.get()
    assert (row.delivery_status, row.delivery_attempts) == ("delivered", 1)
    assert row.delivered_at == delivered.recorded_at


def test_a_delivered_notification_is_not_emailed_again(customer_id):
    notification_send(customer_id=customer_id, type="promotion", message="Hi", notification_id="n1")
    notification_deliver(notification_id="n1", attempt=1)

    again = notification_deliver(notification_id="n1", attempt=2)

    assert again.is_delivered
    assert len(mail.outbox) == 1
    assert len(delivered_events()) == 1


def test_the_message_id_takes_its_domain_from_the_sender_address(settings):
    settings.DEFAULT_FROM_EMAIL = "The Shop <orders@shop.example>"

    assert message_id_for("n1") == "<n1@shop.example>"


def test_the_message_id_falls_back_to_localhost_for_a_sender_without_a_domain(settings):
    settings.DEFAULT_FROM_EMAIL = "orders"

    assert message_id_for("n1") == "<n1@localhost>"


def test_the_email_goes_from_the_configured_sender(settings, customer_id):
    settings.DEFAULT_FROM_EMAIL = "The Shop <orders@shop.example>"
    notification_send(customer_id=customer_id, type="promotion", message="Hi", notification_id="n1")

    notification_deliver(notification_id="n1", attempt=1)

    [email] = mail.outbox
    assert email.from_email == "The Shop <orders@shop.example>"
    assert email.message()["Message-ID"] == "<n1@shop.example>"


@pytest.mark.parametrize(
    ("customer_id", "reason"),
    [("c1", "no user account"), ("999999", "no user account"), ("", "no user account")],
)
def test_a_customer_without_an_account_cannot_be_emailed(customer_id, reason):
    with pytest.raises(NotificationUndeliverable, match=reason):
        customer_email(customer_id)


@pytest.mark.parametrize("email", ["", "   "])
def test_a_customer_without_an_email_address_cannot_be_emailed(email):
    user = UserFactory(email=email)

    with pytest.raises(NotificationUndeliverable, match="no email address"):
        customer_email(str(user.pk))


def test_delivering_to_a_customer_without_an_address_sends_and_records_nothing():
    user = UserFactory(email="")
    notification_send(
        customer_id=str(user.pk), type="promotion", message="Hi", notification_id="n1"
    )

    with pytest.raises(NotificationUndeliverable):
        notification_deliver(notification_id="n1", attempt=1)

    assert mail.outbox == []
    assert delivered_events() == []


def test_delivering_inside_a_transaction_is_refused_before_anything_is_sent(customer_id):
    notification_send(customer_id=customer_id, type="promotion", message="Hi", notification_id="n1")

    with pytest.raises(TransactionOpen, match="Sending an email"), transaction.atomic():
        notification_deliver(notification_id="n1", attempt=1)

    assert mail.outbox == []
    assert delivered_events() == []


def test_a_backend_that_sends_nothing_is_a_failure_and_records_nothing(settings, customer_id):
    settings.EMAIL_BACKEND = "tests.notifications.email_backends.SilentBackend"
    notification_send(customer_id=customer_id, type="promotion", message="Hi", notification_id="n1")

    with pytest.raises(EmailNotAccepted):
        notification_deliver(notification_id="n1", attempt=1)

    assert delivered_events() == []


@pytest.fixture
def meanwhile(settings):
    """A function setting what happens elsewhere while the mail server takes the message."""
    settings.EMAIL_BACKEND = "tests.notifications.email_backends.MeanwhileBackend"

    def set_meanwhile(action):
        MeanwhileBackend.meanwhile = action

    yield set_meanwhile
    MeanwhileBackend.meanwhile = None


def test_a_failure_recorded_while_the_email_went_out_does_not_hide_the_delivery(
    customer_id, meanwhile
):
    notification_send(customer_id=customer_id, type="promotion", message="Hi", notification_id="n1")
    # A worker whose lease ran out records its failure after this one loaded the notification.
    meanwhile(
        lambda: notification_delivery_failed(
            notification_id="n1", attempt=1, error=TimeoutError("slow"), parked=False
        )
    )

    notification = notification_deliver(notification_id="n1", attempt=2)

    assert notification.is_delivered
    assert len(mail.outbox) == 1
    assert [event.event_type for event in Event.objects.order_by("position")] == [
        events.NOTIFICATION_SENT,
        events.NOTIFICATION_DELIVERY_FAILED,
        events.NOTIFICATION_DELIVERED,
    ]
    assert SentNotification.objects.get().delivery_status == "delivered"


def test_a_delivery_recorded_meanwhile_by_another_worker_is_recorded_once(customer_id, meanwhile):
    notification_send(customer_id=customer_id, type="promotion", message="Hi", notification_id="n1")
    other_worker = services.notifications.load("n1")
    other_worker.delivered(message_id=message_id_for("n1"), attempt=1)
    meanwhile(lambda: services.notifications.save(other_worker))

    notification = notification_deliver(notification_id="n1", attempt=1)

    assert notification.is_delivered
    assert len(delivered_events()) == 1


# --- notification_delivery_failed ----------------------------------------------------------------


def test_a_failed_attempt_is_recorded_with_the_error_type_and_message():
    notification_send(customer_id="c1", type="promotion", message="Hi", notification_id="n1")
    metadata = {"causation_id": "e1", "actor": "service:notifications"}

    notification_delivery_failed(
        notification_id="n1",
        attempt=2,
        error=smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
        parked=False,
        metadata=metadata,
    )

    [failed] = Event.objects.filter(event_type=events.NOTIFICATION_DELIVERY_FAILED)
    assert failed.payload == {
        "notification_id": "n1",
        "attempt": 2,
        "error": "SMTPServerDisconnected: Connection unexpectedly closed",
        "parked": False,
    }
    assert failed.metadata == metadata
    row = SentNotification.objects.get()
    assert (row.delivery_status, row.delivery_attempts) == ("pending", 1)
    assert row.delivery_error == "SMTPServerDisconnected: Connection unexpectedly closed"


def test_a_parked_failure_shows_as_failed():
    notification_send(customer_id="c1", type="promotion", message="Hi", notification_id="n1")

    notification_delivery_failed(
        notification_id="n1", attempt=5, error=OSError("refused"), parked=True
    )

    assert SentNotification.objects.get().delivery_status == "failed"


def test_a_failure_reported_after_the_delivery_records_nothing(customer_id):
    notification_send(customer_id=customer_id, type="promotion", message="Hi", notification_id="n1")
    notification_deliver(notification_id="n1", attempt=1)

    notification = notification_delivery_failed(
        notification_id="n1", attempt=1, error=OSError("late"), parked=True
    )

    assert notification.is_delivered
    assert not Event.objects.filter(event_type=events.NOTIFICATION_DELIVERY_FAILED).exists()
    assert SentNotification.objects.get().delivery_status == "delivered"

"""notification_deliver emails a recorded notification once and records the delivery;
notification_delivery_failed records a failed attempt."""

import smtplib

import pytest
from django.core import mail
from django.db import transaction

from eventstore.follower.effects import TransactionOpen
from eventstore.models import Event
from notifications import events, services
from notifications.aggregates import EmailNotAccepted, NotificationUndeliverable
from notifications.models import SentNotification
from notifications.services import (
    customer_email,
    message_id_for,
    notification_deliver,
    notification_delivery_failed,
    notification_send,
)
from tests.factories import UserFactory
from tests.notifications.email_backends import MeanwhileBackend

pytestmark = pytest.mark.django_db


def delivered_events():
    return list(Event.objects.filter(event_type=events.NOTIFICATION_DELIVERED))


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

"""OrderOutcomeNotifier: each order outcome tells the customer once, with its cause recorded.
NotificationDeliverer: each notification is emailed at least once, under one Message-ID, and its
delivery (or its failures, retried with backoff and then parked) is recorded once."""

import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from eventstore.follower.effects import retry_parked, run_due
from eventstore.follower.subscriptions import catch_up, get_subscribers
from eventstore.models import Checkpoint, Effect, Event
from eventstore.store import NewEvent
from httpapi.caller import customer_id_for
from notifications import events, services
from notifications.aggregates import NotificationUndeliverable
from notifications.models import SentNotification
from tests.factories import StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

ORDER_PAYLOADS = {
    events.ORDER_CONFIRMED: {"customer_id": "c1", "total_amount": "42.50"},
    events.ORDER_COMPLETED: {"customer_id": "c1"},
    events.ORDER_CANCELLED: {"customer_id": "c1", "reason": "payment_declined"},
    events.ORDER_REFUNDED: {"customer_id": "c1", "total_amount": "42.50", "reason": ""},
}
OUTCOME_TYPES = {
    events.ORDER_CONFIRMED: "order_confirmed",
    events.ORDER_COMPLETED: "order_completed",
    events.ORDER_CANCELLED: "order_cancelled",
    events.ORDER_REFUNDED: "order_refunded",
}


@pytest.fixture
def notifier():
    """The registered OrderOutcomeNotifier."""
    return get_subscribers(["notifications.orders"])[0]


@pytest.fixture
def order_event(store):
    """A function appending one order outcome to the order's stream, correlated with the order."""

    def append(event_type, order_id="o1"):
        payload = {"order_id": order_id, **ORDER_PAYLOADS[event_type]}
        new_event = NewEvent(event_type, payload, {"correlation_id": order_id})
        return store.append_to_stream("order", order_id, [new_event])[0]

    return append


def notification_events():
    return list(Event.objects.filter(event_type=events.NOTIFICATION_SENT).order_by("position"))


@pytest.mark.parametrize("event_type", list(ORDER_PAYLOADS))
def test_each_order_outcome_yields_one_notification_caused_by_it(notifier, order_event, event_type):
    order = order_event(event_type)

    result = catch_up(notifier)

    assert (result.handled, result.error) == (1, "")
    [event] = notification_events()
    assert event.payload["customer_id"] == "c1"
    assert event.payload["order_id"] == "o1"
    assert event.payload["type"] == OUTCOME_TYPES[event_type]
    assert event.metadata == {
        "correlation_id": "o1",
        "causation_id": str(order.event_id),
        "actor": "service:notifications",
    }
    assert SentNotification.objects.get().notification_id == event.aggregate_id


def test_the_same_event_handled_twice_gives_one_notification(notifier, order_event):
    order = order_event(events.ORDER_CONFIRMED)

    notifier.handle(order)
    notifier.handle(order)

    assert len(notification_events()) == 1
    assert SentNotification.objects.count() == 1


def test_a_second_confirmation_of_the_same_order_gives_one_notification(notifier, order_event):
    order_event(events.ORDER_CONFIRMED)
    order_event(events.ORDER_CONFIRMED)

    result = catch_up(notifier)

    assert (result.handled, result.error) == (2, "")
    assert len(notification_events()) == 1


def test_every_outcome_of_one_order_gives_its_own_notification(notifier, order_event):
    for event_type in ORDER_PAYLOADS:
        order_event(event_type)

    catch_up(notifier)

    assert sorted(SentNotification.objects.values_list("type", flat=True)) == sorted(
        OUTCOME_TYPES.values()
    )


def test_the_checkpoint_advances_past_the_handled_events(notifier, order_event):
    order_event(events.ORDER_CONFIRMED, order_id="o1")
    last = order_event(events.ORDER_CANCELLED, order_id="o2")

    result = catch_up(notifier)

    checkpoint = Checkpoint.objects.get(subscriber="notifications.orders")
    assert checkpoint.position == result.position == last.position
    assert (checkpoint.last_error, checkpoint.failed_position) == ("", None)
    assert catch_up(notifier).handled == 0
    assert SentNotification.objects.count() == 2


def test_the_notifier_ignores_other_events(notifier, store):
    store.append_to_stream(
        "order", "o1", [NewEvent("OrderPlaced", {"order_id": "o1", "customer_id": "c1"})]
    )

    result = catch_up(notifier)

    assert result.handled == 0
    assert not SentNotification.objects.exists()


def test_after_commit_the_notification_is_recorded_and_emailed_without_an_explicit_catch_up(
    store, customer, customer_id, django_capture_on_commit_callbacks
):
    order_id = uuid.uuid4().hex
    payload = {"order_id": order_id, "customer_id": customer_id, "total_amount": "42.50"}

    with django_capture_on_commit_callbacks(execute=True):
        order = store.append_to_stream(
            "order",
            order_id,
            [NewEvent(events.ORDER_CONFIRMED, payload, {"correlation_id": order_id})],
        )[0]

    row = SentNotification.objects.get(order_id=order_id)
    assert (row.type, row.delivery_status) == ("order_confirmed", "delivered")
    assert notification_events()[0].metadata["causation_id"] == str(order.event_id)
    [email] = mail.outbox
    assert email.to == [customer.email]
    assert email.subject == f"Your order {order_id} is confirmed"


# --- NotificationDeliverer -----------------------------------------------------------------------

UNREACHABLE = "tests.notifications.email_backends.UnreachableSMTPBackend"
ITEMS = [
    {"product_id": "keyboard", "quantity": 1, "unit_price": "89.00"},
    {"product_id": "mouse", "quantity": 2, "unit_price": "29.90"},
]


class WorkerDied(BaseException):
    """Stands for the process dying: nothing below it catches it."""


@pytest.fixture
def deliverer():
    """The registered NotificationDeliverer."""
    return get_subscribers(["notifications.delivery"])[0]


@pytest.fixture
def notify(notifier, store):
    """A function recording an order outcome's notification for a customer, as the order's
    event and the notifier's reaction do; returns the NotificationSent event."""

    def record(customer_id, event_type=events.ORDER_CONFIRMED, order_id="o1"):
        payload = {"order_id": order_id, "customer_id": customer_id, "items": ITEMS}
        payload |= {"total_amount": "148.80", "reason": "card_declined"}
        new = NewEvent(event_type, payload, {"correlation_id": order_id})
        store.append_to_stream("order", order_id, [new])
        catch_up(notifier)
        [sent] = SentNotification.objects.filter(order_id=order_id)
        return store.read_stream(events.NOTIFICATION, sent.notification_id)[0]

    return record


def delivery_events(event_type=events.NOTIFICATION_DELIVERED):
    return list(Event.objects.filter(event_type=event_type).order_by("position"))


def effect():
    return Effect.objects.get(subscriber="notifications.delivery")


def test_the_deliverer_is_registered_for_recorded_notifications(deliverer):
    assert deliverer.event_types == {events.NOTIFICATION_SENT}
    assert deliverer.permanent_errors == (NotificationUndeliverable,)


def test_an_order_outcome_is_emailed_once_to_the_customer_with_a_stable_message_id(
    deliverer, notify, customer, customer_id
):
    sent = notify(customer_id)

    result = catch_up(deliverer)

    assert (result.handled, result.calls, result.error) == (1, 1, "")
    [email] = mail.outbox
    assert email.to == [customer.email]
    assert email.from_email == "orders@localhost"
    assert email.subject == "Your order o1 is confirmed"
    assert "Your order o1 is confirmed and paid." in email.body
    assert "  1 x keyboard at 89.00\n  2 x mouse at 29.90\n" in email.body
    assert "Total: 148.80" in email.body
    message_id = f"<{sent.aggregate_id}@localhost>"
    assert email.message()["Message-ID"] == message_id
    [delivered] = delivery_events()
    assert delivered.payload == {
        "notification_id": sent.aggregate_id,
        "message_id": message_id,
        "attempt": 1,
    }
    assert delivered.metadata == {
        "correlation_id": "o1",
        "causation_id": str(sent.event_id),
        "actor": "service:notifications",
    }
    row = SentNotification.objects.get()
    assert (row.delivery_status, row.delivery_attempts, row.delivery_error) == ("delivered", 1, "")
    assert row.delivered_at == delivered.recorded_at
    assert effect().status == "done"


@pytest.mark.parametrize(
    ("event_type", "subject", "text"),
    [
        (events.ORDER_COMPLETED, "Your order o1 is complete", "Thank you for your purchase."),
        (events.ORDER_CANCELLED, "Your order o1 was cancelled", "cancelled: card declined."),
        (
            events.ORDER_REFUNDED,
            "Your order o1 was cancelled and refunded",
            "The payment of 148.80 is refunded in full",
        ),
    ],
)
def test_every_order_outcome_is_emailed_with_its_own_text(
    deliverer, notify, customer_id, event_type, subject, text
):
    notify(customer_id, event_type)

    catch_up(deliverer)

    [email] = mail.outbox
    assert email.subject == subject
    assert text in email.body
    assert "2 x mouse at 29.90" in email.body


def test_a_notification_handled_twice_and_performed_again_is_emailed_once(
    deliverer, notify, customer_id
):
    sent = notify(customer_id)

    deliverer.handle(sent)
    deliverer.handle(sent)
    calls = run_due(deliverer)
    deliverer.perform(sent, attempt=2)

    assert calls == 1
    assert len(mail.outbox) == 1
    assert len(delivery_events()) == 1


def test_a_staff_notification_is_emailed_with_the_generic_text(deliverer, customer, customer_id):
    services.notification_send(customer_id=customer_id, type="spring_sale", message="20% off")

    catch_up(deliverer)

    [email] = mail.outbox
    assert (email.to, email.subject, email.body) == ([customer.email], "Spring sale", "20% off\n")


def test_a_mail_server_failure_is_recorded_keeps_the_delivery_pending_and_backs_off(
    deliverer, notify, customer_id, settings
):
    settings.EMAIL_BACKEND = UNREACHABLE
    settings.EVENTSTORE_EFFECT_BACKOFF = 30
    sent = notify(customer_id)

    result = catch_up(deliverer)

    assert (result.calls, result.error) == (1, "")
    [failed] = delivery_events(events.NOTIFICATION_DELIVERY_FAILED)
    assert failed.payload == {
        "notification_id": sent.aggregate_id,
        "attempt": 1,
        "error": "SMTPServerDisconnected: Connection unexpectedly closed",
        "parked": False,
    }
    assert failed.metadata["causation_id"] == str(sent.event_id)
    row = SentNotification.objects.get()
    assert (row.delivery_status, row.delivery_attempts) == ("pending", 1)
    assert row.delivery_error.startswith("SMTPServerDisconnected")
    assert (effect().status, effect().attempts) == ("pending", 1)
    assert effect().due_at > timezone.now() + timedelta(seconds=25)
    assert run_due(deliverer) == 0  # not due again before the backoff
    assert mail.outbox == []


def test_a_mail_server_that_keeps_failing_is_retried_then_parked_and_shown_failed(
    deliverer, notify, customer_id, settings, staff_client
):
    settings.EMAIL_BACKEND = UNREACHABLE
    settings.EVENTSTORE_EFFECT_BACKOFF = 0
    settings.EVENTSTORE_EFFECT_ATTEMPTS = 3
    sent = notify(customer_id)

    result = catch_up(deliverer)

    assert result.calls == 3
    failures = delivery_events(events.NOTIFICATION_DELIVERY_FAILED)
    assert [(f.payload["attempt"], f.payload["parked"]) for f in failures] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert effect().status == "parked"
    row = SentNotification.objects.get()
    assert (row.delivery_status, row.delivery_attempts) == ("failed", 3)
    listed = staff_client.get("/api/notifications/", {"delivery_status": "failed"}).json()
    assert [(n["notification_id"], n["delivery_status"]) for n in listed["results"]] == [
        (sent.aggregate_id, "failed")
    ]
    assert mail.outbox == []


def test_a_parked_delivery_retried_by_staff_is_delivered_on_the_next_catch_up(
    deliverer, notify, customer_id, settings
):
    settings.EMAIL_BACKEND = UNREACHABLE
    settings.EVENTSTORE_EFFECT_BACKOFF = 0
    settings.EVENTSTORE_EFFECT_ATTEMPTS = 2
    sent = notify(customer_id)
    catch_up(deliverer)
    assert SentNotification.objects.get().delivery_status == "failed"

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert retry_parked(["notifications.delivery"]) == 1
    result = catch_up(deliverer)

    assert result.calls == 1
    assert len(mail.outbox) == 1
    [delivered] = delivery_events()
    assert delivered.payload["attempt"] == 1  # the first call since staff retried
    row = SentNotification.objects.get()
    assert (row.delivery_status, row.delivery_attempts, row.delivery_error) == ("delivered", 3, "")
    assert mail.outbox[0].message()["Message-ID"] == f"<{sent.aggregate_id}@localhost>"


@pytest.mark.parametrize(
    ("recipient", "error"),
    [("no email", "has no email address"), ("no account", "has no user account")],
)
def test_a_customer_who_cannot_be_emailed_is_parked_at_once(
    deliverer, notify, settings, recipient, error
):
    settings.EVENTSTORE_EFFECT_ATTEMPTS = 5
    customer_id = customer_id_for(UserFactory(email="")) if recipient == "no email" else "c-404"
    notify(customer_id)

    result = catch_up(deliverer)

    assert result.calls == 1
    [failed] = delivery_events(events.NOTIFICATION_DELIVERY_FAILED)
    assert (failed.payload["attempt"], failed.payload["parked"]) == (1, True)
    assert failed.payload["error"].startswith("NotificationUndeliverable")
    assert error in failed.payload["error"]
    assert effect().status == "parked"
    assert SentNotification.objects.get().delivery_status == "failed"
    assert mail.outbox == []


def test_a_parked_notification_does_not_hold_up_the_next_one(deliverer, notify, customer_id):
    notify("c-404", order_id="o1")
    notify(customer_id, order_id="o2")

    result = catch_up(deliverer)

    assert (result.handled, result.calls, result.error) == (2, 2, "")
    statuses = dict(SentNotification.objects.values_list("order_id", "delivery_status"))
    assert statuses == {"o1": "failed", "o2": "delivered"}
    assert len(mail.outbox) == 1


def test_a_crash_after_the_email_went_out_sends_it_again_with_the_same_message_id(
    deliverer, notify, customer_id, settings, monkeypatch
):
    """The worker dies between the mail server's answer and the delivery's append: its claim
    runs out, and the next catch-up sends the same email again (at least once) and records one
    delivery."""
    settings.EVENTSTORE_EFFECT_LEASE = 0
    sent = notify(customer_id)
    real_save = services.notifications.save

    def crash(*aggregates, **kwargs):
        raise WorkerDied

    monkeypatch.setattr(services.notifications, "save", crash)
    with pytest.raises(WorkerDied):
        catch_up(deliverer)
    assert len(mail.outbox) == 1
    assert delivery_events() == []
    assert effect().status == "pending"

    monkeypatch.setattr(services.notifications, "save", real_save)
    result = catch_up(deliverer)

    assert result.calls == 1
    message_id = f"<{sent.aggregate_id}@localhost>"
    assert [email.message()["Message-ID"] for email in mail.outbox] == [message_id] * 2
    assert [email.body for email in mail.outbox] == [mail.outbox[0].body] * 2
    [delivered] = delivery_events()
    assert (delivered.payload["message_id"], delivered.payload["attempt"]) == (message_id, 2)
    assert effect().status == "done"
    assert SentNotification.objects.get().delivery_status == "delivered"
    assert run_due(deliverer) == 0


def test_staff_see_the_delivery_status_a_customer_reads_theirs(
    deliverer, notify, customer, customer_id, customer_client
):
    staff = StaffUserFactory()
    notify(customer_id)
    catch_up(deliverer)

    for user in (staff, customer):
        customer_client.force_authenticate(user)
        [notification] = customer_client.get(f"/api/notifications/{customer_id}/").json()
        assert notification["delivery_status"] == "delivered"
        assert notification["delivered_at"] is not None


def test_a_notification_recorded_before_delivery_was_real_is_not_emailed(deliverer, store):
    """A log from before email delivery: its notifications went to the sender of the time when
    they were recorded, so the first deploy of delivery sends none of them again."""
    legacy = {
        "notification_id": "n-old",
        "customer_id": "1",
        "order_id": "o-old",
        "type": "order_completed",
        "channel": "email",
        "message": "Your order o-old is complete.",
    }
    [old] = store.append_to_stream(
        events.NOTIFICATION,
        "n-old",
        [NewEvent(events.NOTIFICATION_SENT, legacy, schema_version=1)],
    )

    result = catch_up(deliverer)

    assert (result.handled, result.calls) == (1, 0)
    assert mail.outbox == []
    assert not Effect.objects.exists()
    row = SentNotification.objects.get()
    assert (row.delivery_status, row.delivered_at) == ("delivered", old.recorded_at)

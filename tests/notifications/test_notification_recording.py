"""notification_send and order_notify record a notification's intent once, with its email
rendered, and email nothing yet."""

import pytest
from django.core import mail
from django.db import transaction

from eventstore.aggregates import derived_event_id
from eventstore.models import Event
from notifications import events
from notifications.aggregates import NotificationError
from notifications.models import SentNotification
from notifications.services import notification_send, order_notify

pytestmark = pytest.mark.django_db

ITEMS = [
    {"product_id": "keyboard", "quantity": 1, "unit_price": "89.00"},
    {"product_id": "mouse", "quantity": 2, "unit_price": "29.90"},
]


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


def test_the_email_of_an_order_never_priced_shows_no_price_and_no_total():
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
    assert "  999 x monitor\n" in body
    assert "price" not in body
    assert "Total" not in body


NOT_CHARGED = "you have not been charged"
REFUNDED = "The payment taken for it is refunded."
LATE_REFUND = "If a payment for it went through after all, it is refunded."


@pytest.mark.parametrize(
    ("reason", "priced", "said", "not_said"),
    [
        # The stock was never held: no payment was asked for.
        ("insufficient_stock", False, "cancelled before any payment: " + NOT_CHARGED, "refund"),
        ("unknown_product", False, "cancelled before any payment", "refund"),
        ("inventory_timeout", False, "cancelled before any payment", "refund"),
        # The charge was refused: nothing was taken.
        ("card_declined", True, "did not go through: " + NOT_CHARGED, "refund"),
        ("insufficient_funds", True, "did not go through: " + NOT_CHARGED, "refund"),
        ("invalid_token", True, "did not go through: " + NOT_CHARGED, "refund"),
        ("processing_error", True, "did not go through: " + NOT_CHARGED, "refund"),
        ("token_expired", True, "did not go through: " + NOT_CHARGED, "refund"),
        # The order's payment id was charged outside the saga: that charge is refunded.
        ("payment_conflict", True, REFUNDED, NOT_CHARGED),
        # No answer in time: a charge may still go through, and is then refunded.
        ("payment_timeout", True, LATE_REFUND, NOT_CHARGED),
        ("process_payment_failed", True, LATE_REFUND, NOT_CHARGED),
    ],
)
def test_a_cancellation_email_says_what_became_of_the_payment(reason, priced, said, not_said):
    price = "89.00" if priced else None
    payload = {
        "order_id": "o1",
        "customer_id": "c1",
        "items": [{"product_id": "keyboard", "quantity": 1, "unit_price": price}],
        "total_amount": price,
        "reason": reason,
    }

    order_notify(event_type=events.ORDER_CANCELLED, payload=payload)

    body = sent_events()[0].payload["body"]
    assert f"Your order o1 was cancelled: {reason.replace('_', ' ')}." in body
    assert said in body
    assert not_said not in body
    assert ("Total: 89.00" in body) is priced
    assert "not set yet" not in body


@pytest.mark.parametrize(
    ("event_type", "said"),
    [
        (events.ORDER_CONFIRMED, "is confirmed and paid."),
        (events.ORDER_COMPLETED, "is complete. Thank you for your purchase."),
    ],
)
def test_a_paid_order_email_mentions_no_refund_and_no_missing_price(event_type, said):
    payload = {"order_id": "o1", "customer_id": "c1", "items": ITEMS, "total_amount": "148.80"}

    order_notify(event_type=event_type, payload=payload)

    body = sent_events()[0].payload["body"]
    assert f"Your order o1 {said}" in body
    assert "refund" not in body and "charged" not in body
    assert "not set yet" not in body


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

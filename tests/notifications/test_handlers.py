"""OrderOutcomeNotifier: each order outcome tells the customer once, with its cause recorded."""

import logging
import uuid

import pytest

from eventstore.models import Checkpoint, Event
from eventstore.store import NewEvent
from eventstore.subscriptions import catch_up, get_subscribers
from notifications import events
from notifications.models import SentNotification
from notifications.sender import get_sender

pytestmark = pytest.mark.django_db

ORDER_PAYLOADS = {
    events.ORDER_CONFIRMED: {"customer_id": "c1", "total_amount": "42.50"},
    events.ORDER_COMPLETED: {"customer_id": "c1"},
    events.ORDER_CANCELLED: {"customer_id": "c1", "reason": "payment_declined"},
}
OUTCOME_TYPES = {
    events.ORDER_CONFIRMED: "order_confirmed",
    events.ORDER_COMPLETED: "order_completed",
    events.ORDER_CANCELLED: "order_cancelled",
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

    checkpoint = Checkpoint.objects.get(name="notifications.orders")
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


def test_after_commit_the_notification_is_sent_without_an_explicit_catch_up(
    order_event, caplog, django_capture_on_commit_callbacks
):
    get_sender.cache_clear()
    caplog.set_level(logging.INFO, logger="notifications.sender")
    order_id = uuid.uuid4().hex

    with django_capture_on_commit_callbacks(execute=True):
        order = order_event(events.ORDER_CONFIRMED, order_id=order_id)

    row = SentNotification.objects.get(order_id=order_id)
    assert row.type == "order_confirmed"
    assert notification_events()[0].metadata["causation_id"] == str(order.event_id)
    emails = [r.getMessage() for r in caplog.records if r.name == "notifications.sender"]
    assert emails == [f"Email to customer c1 [{row.notification_id}]: {row.message}"]

"""SentNotification read model: one row per notification, newest first, equal to a rebuild."""

import pytest

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import rebuild, verify
from notifications import events
from notifications.models import SentNotification
from notifications.services import notification_send, order_notify

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
        }
        for event in sent
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

"""The event log over HTTP: who may read it, its pages and filters, and one event."""

import uuid
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import pytest
from django.utils import timezone

from eventstore.store import event_store
from tests.factories import NewEventFactory, StreamAppendFactory, append_event

EVENTS_URL = "/api/events/"


def append_at(when, **event_fields):
    """Append one event to a new stream with the store's clock stopped at `when`."""
    with patch.object(timezone, "now", return_value=when):
        return append_event(**event_fields)


def event_ids(response):
    """The event ids of one page of the event log, in the order listed."""
    return [item["event_id"] for item in response.json()["results"]]


# --- event log: access ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_events_list_is_refused_to_anonymous_callers(anonymous_client):
    response = anonymous_client.get(EVENTS_URL)

    assert response.status_code == 401
    assert "detail" in response.json()


@pytest.mark.django_db
def test_events_list_is_forbidden_to_customers(customer_client):
    append_event()

    response = customer_client.get(EVENTS_URL)

    assert response.status_code == 403
    assert "detail" in response.json()


@pytest.mark.django_db
def test_event_detail_is_forbidden_to_customers(customer_client):
    event = append_event()

    response = customer_client.get(f"{EVENTS_URL}{event.event_id}/")

    assert response.status_code == 403


@pytest.mark.django_db
def test_event_detail_is_refused_to_anonymous_callers(anonymous_client):
    event = append_event()

    response = anonymous_client.get(f"{EVENTS_URL}{event.event_id}/")

    assert response.status_code == 401


# --- event log: listing and pagination -----------------------------------------------------------


@pytest.mark.django_db
def test_events_list_shows_the_log_in_position_order_to_staff(staff_client):
    first = append_event(aggregate_type="order")
    second = append_event(aggregate_type="payment")
    third = append_event(aggregate_type="order")

    response = staff_client.get(EVENTS_URL)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["event_id"] for item in results] == [
        str(first.event_id),
        str(second.event_id),
        str(third.event_id),
    ]
    positions = [item["position"] for item in results]
    assert positions == sorted(positions)
    assert len(set(positions)) == 3


@pytest.mark.django_db
def test_events_list_of_an_empty_log_is_an_empty_page(staff_client):
    response = staff_client.get(EVENTS_URL)

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


@pytest.mark.django_db
def test_events_list_cursor_pages_cover_every_event_once_in_order(staff_client):
    # Several events per stream and several streams in one append, so positions interleave.
    streams = [StreamAppendFactory(events=[NewEventFactory() for _ in range(2)]) for _ in range(2)]
    recorded = event_store.append(*streams)
    recorded += [append_event() for _ in range(3)]
    expected = [str(event.event_id) for event in sorted(recorded, key=lambda e: e.position)]

    seen = []
    pages = 0
    url = f"{EVENTS_URL}?page_size=2"
    while url:
        response = staff_client.get(url)
        assert response.status_code == 200
        page = response.json()
        assert len(page["results"]) <= 2
        seen += [item["event_id"] for item in page["results"]]
        pages += 1
        url = page["next"]

    assert seen == expected
    assert pages == 4  # 7 events, 2 per page


@pytest.mark.django_db
def test_events_list_cursor_keeps_filters_across_pages(staff_client):
    orders = [append_event(aggregate_type="order") for _ in range(3)]
    for _ in range(3):
        append_event(aggregate_type="payment")

    seen = []
    url = f"{EVENTS_URL}?page_size=2&aggregate_type=order"
    while url:
        page = staff_client.get(url).json()
        seen += [item["event_id"] for item in page["results"]]
        url = page["next"]

    assert seen == [str(event.event_id) for event in orders]


@pytest.mark.django_db
def test_events_list_previous_link_returns_the_earlier_page(staff_client):
    events = [append_event() for _ in range(4)]
    first_page = staff_client.get(f"{EVENTS_URL}?page_size=2").json()

    second_page = staff_client.get(first_page["next"]).json()
    back = staff_client.get(second_page["previous"]).json()

    assert [item["event_id"] for item in second_page["results"]] == [
        str(event.event_id) for event in events[2:]
    ]
    assert back["results"] == first_page["results"]


@pytest.mark.django_db
def test_events_list_page_size_is_capped(staff_client):
    for _ in range(3):
        append_event()

    with patch("eventstore.http.views.PositionCursorPagination.max_page_size", 2):
        response = staff_client.get(f"{EVENTS_URL}?page_size=1000")

    assert len(response.json()["results"]) == 2


# --- event log: filters --------------------------------------------------------------------------


@pytest.mark.django_db
def test_events_list_filters_by_aggregate_type(staff_client):
    order = append_event(aggregate_type="order")
    append_event(aggregate_type="payment")

    response = staff_client.get(EVENTS_URL, {"aggregate_type": "order"})

    assert event_ids(response) == [str(order.event_id)]


@pytest.mark.django_db
def test_events_list_filters_by_aggregate_id(staff_client):
    stream = StreamAppendFactory(events=[NewEventFactory(), NewEventFactory()])
    wanted = event_store.append(stream)
    append_event()
    # The same id in another aggregate type is a different stream, but shares the id.
    other_type = append_event(aggregate_type="other", aggregate_id=stream.aggregate_id)

    response = staff_client.get(EVENTS_URL, {"aggregate_id": stream.aggregate_id})

    assert event_ids(response) == [str(event.event_id) for event in [*wanted, other_type]]


@pytest.mark.django_db
def test_events_list_filters_by_aggregate_type_and_id_together(staff_client):
    stream = StreamAppendFactory(aggregate_type="order")
    wanted = event_store.append(stream)[0]
    append_event(aggregate_type="payment", aggregate_id=stream.aggregate_id)

    response = staff_client.get(
        EVENTS_URL, {"aggregate_type": "order", "aggregate_id": stream.aggregate_id}
    )

    assert event_ids(response) == [str(wanted.event_id)]


@pytest.mark.django_db
def test_events_list_filters_by_event_type(staff_client):
    placed = append_event(event_type="OrderPlaced")
    append_event(event_type="OrderConfirmed")
    placed_again = append_event(event_type="OrderPlaced")

    response = staff_client.get(EVENTS_URL, {"event_type": "OrderPlaced"})

    assert event_ids(response) == [str(placed.event_id), str(placed_again.event_id)]


@pytest.mark.django_db
def test_events_list_filters_by_correlation_id_in_metadata(staff_client):
    order_id = str(uuid.uuid4())
    in_order = [
        append_event(aggregate_type="order", metadata={"correlation_id": order_id}),
        append_event(aggregate_type="payment", metadata={"correlation_id": order_id}),
    ]
    append_event(metadata={"correlation_id": str(uuid.uuid4())})
    append_event(metadata={})

    response = staff_client.get(EVENTS_URL, {"correlation_id": order_id})

    assert event_ids(response) == [str(event.event_id) for event in in_order]


@pytest.mark.django_db
def test_events_list_correlation_filter_does_not_match_other_metadata_keys(staff_client):
    order_id = str(uuid.uuid4())
    append_event(metadata={"causation_id": order_id})
    append_event(payload={"correlation_id": order_id})

    response = staff_client.get(EVENTS_URL, {"correlation_id": order_id})

    assert event_ids(response) == []


@pytest.mark.django_db
def test_events_list_filters_after_position_exclusively(staff_client):
    first, second, third = (append_event() for _ in range(3))

    response = staff_client.get(EVENTS_URL, {"after_position": first.position})

    assert event_ids(response) == [str(second.event_id), str(third.event_id)]


@pytest.mark.django_db
def test_events_list_after_the_last_position_is_empty(staff_client):
    last = append_event()

    response = staff_client.get(EVENTS_URL, {"after_position": last.position})

    assert response.status_code == 200
    assert event_ids(response) == []


@pytest.mark.django_db
def test_events_list_filters_by_recorded_time_window(staff_client):
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    early = append_at(start)
    middle = append_at(start + timedelta(hours=1))
    late = append_at(start + timedelta(hours=2))

    after = staff_client.get(EVENTS_URL, {"recorded_after": middle.recorded_at.isoformat()})
    before = staff_client.get(EVENTS_URL, {"recorded_before": middle.recorded_at.isoformat()})
    window = staff_client.get(
        EVENTS_URL,
        {
            "recorded_after": early.recorded_at.isoformat(),
            "recorded_before": late.recorded_at.isoformat(),
        },
    )

    # recorded_after includes its instant, recorded_before excludes it.
    assert event_ids(after) == [str(middle.event_id), str(late.event_id)]
    assert event_ids(before) == [str(early.event_id)]
    assert event_ids(window) == [str(early.event_id), str(middle.event_id)]


@pytest.mark.django_db
def test_events_list_rejects_a_malformed_filter_value_with_a_json_400(staff_client):
    append_event()

    response = staff_client.get(EVENTS_URL, {"recorded_after": "yesterday"})

    assert response.status_code == 400
    assert "recorded_after" in response.json()


# --- event log: one event ------------------------------------------------------------------------


@pytest.mark.django_db
def test_event_detail_returns_the_event_with_the_contract_fields(staff_client):
    order_id = str(uuid.uuid4())
    stream = StreamAppendFactory(
        aggregate_type="order",
        events=[
            NewEventFactory(event_type="OrderPlaced"),
            NewEventFactory(
                event_type="OrderConfirmed",
                payload={"total": "12.50", "items": [{"product_id": "p-1", "quantity": 2}]},
                metadata={"correlation_id": order_id},
            ),
        ],
    )
    event = event_store.append(stream)[1]

    response = staff_client.get(f"{EVENTS_URL}{event.event_id}/")

    assert response.status_code == 200
    body = response.json()
    assert {
        "event_id",
        "event_type",
        "version",
        "position",
        "payload",
        "metadata",
        "recorded_at",
        "aggregate_type",
        "aggregate_id",
    } <= body.keys()
    assert body["event_id"] == str(event.event_id)
    assert body["event_type"] == "OrderConfirmed"
    assert body["aggregate_type"] == "order"
    assert body["aggregate_id"] == stream.aggregate_id
    assert body["version"] == 2
    assert body["position"] == event.position
    assert body["payload"] == {"total": "12.50", "items": [{"product_id": "p-1", "quantity": 2}]}
    assert body["metadata"] == {"correlation_id": order_id}
    assert datetime.fromisoformat(body["recorded_at"].replace("Z", "+00:00")) == event.recorded_at


@pytest.mark.django_db
def test_event_detail_answers_404_for_an_unknown_event_id(staff_client):
    append_event()

    response = staff_client.get(f"{EVENTS_URL}{uuid.uuid4()}/")

    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.django_db
def test_event_detail_answers_404_for_an_id_that_is_not_a_uuid(staff_client):
    append_event()

    response = staff_client.get(f"{EVENTS_URL}{'-' * 36}/")

    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5"])
def test_a_malformed_page_size_of_the_log_answers_400(staff_client, value):
    response = staff_client.get("/api/events/", {"page_size": value})

    assert response.status_code == 400
    assert list(response.json()) == ["page_size"]


@pytest.mark.django_db
def test_a_page_size_over_the_maximum_gives_the_maximum_and_an_empty_one_the_default(
    staff_client,
):
    assert staff_client.get("/api/events/", {"page_size": "5000"}).status_code == 200
    assert staff_client.get("/api/events/", {"page_size": ""}).status_code == 200


@pytest.mark.django_db
def test_a_page_named_last_is_not_a_page_number(staff_client):
    assert staff_client.get("/api/orders/", {"page": "last"}).status_code == 404

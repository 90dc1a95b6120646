"""Every date filter of the API compares the instant it is given, whatever its UTC offset or
year, and never answers 500."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.factories import append_event

pytestmark = pytest.mark.django_db

DATE_FILTERS = [
    ("/api/orders/", "created_after"),
    ("/api/orders/", "created_before"),
    ("/api/notifications/", "sent_after"),
    ("/api/notifications/", "sent_before"),
    ("/api/events/", "recorded_after"),
    ("/api/events/", "recorded_before"),
]


@pytest.mark.parametrize(("url", "name"), DATE_FILTERS)
@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01T00:00:00-17:11",  # Python parses offsets up to 23:59, PostgreSQL 15:59
        "2020-01-01T00:00:00+16:00",
        "2020-01-01T00:00:00+15:59",
        "0001-01-01T00:00:00+15:00",  # before year 1 in UTC
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:00:00-15:00",  # after year 9999 in UTC
        "",
    ],
)
def test_a_date_filter_with_any_offset_or_year_answers_200(staff_client, url, name, value):
    response = staff_client.get(url, {name: value})

    assert response.status_code == 200


@pytest.mark.parametrize("hours", [-17.5, 16, 20])
def test_a_date_filter_with_a_large_offset_compares_the_instant_it_names(staff_client, hours):
    event = append_event()
    zone = timezone(timedelta(hours=hours))
    before = (event.recorded_at - timedelta(minutes=5)).astimezone(zone).isoformat()
    after = (event.recorded_at + timedelta(minutes=5)).astimezone(zone).isoformat()

    found = staff_client.get("/api/events/", {"recorded_after": before}).json()["results"]
    none = staff_client.get("/api/events/", {"recorded_after": after}).json()["results"]

    assert [e["event_id"] for e in found] == [str(event.event_id)]
    assert none == []


def test_an_instant_beyond_year_9999_in_utc_keeps_every_event_before_it(staff_client):
    event = append_event()
    assert event.recorded_at < datetime(9999, 1, 1, tzinfo=UTC)

    response = staff_client.get("/api/events/", {"recorded_before": "9999-12-31T23:00:00-15:00"})

    assert [e["event_id"] for e in response.json()["results"]] == [str(event.event_id)]

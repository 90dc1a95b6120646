"""Every date filter of the API answers 400 naming itself for an instant no database stores."""

import pytest

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
        "0001-01-01T00:00:00+15:00",  # before year 1 in UTC
        "9999-12-31T23:00:00-15:00",  # after year 9999 in UTC
    ],
)
def test_a_date_filter_out_of_every_database_range_answers_400_naming_it(
    staff_client, url, name, value
):
    response = staff_client.get(url, {name: value})

    assert response.status_code == 400
    assert list(response.json()) == [name]


@pytest.mark.parametrize(("url", "name"), DATE_FILTERS)
@pytest.mark.parametrize(
    "value", ["2020-01-01T00:00:00+15:59", "2020-01-01T00:00:00-15:59", "0001-01-01T00:00:00Z", ""]
)
def test_a_date_filter_at_the_edge_of_the_range_is_accepted(staff_client, url, name, value):
    response = staff_client.get(url, {name: value})

    assert response.status_code == 200

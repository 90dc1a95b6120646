"""Orders' output serializers: saga times kept as strings in JSON columns read like any other."""

from datetime import UTC, datetime

from rest_framework import serializers

from orders.serializers import StoredDateTimeField

MOMENT = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_a_stored_iso_string_is_shown_like_a_datetime_field_shows_the_moment():
    shown = StoredDateTimeField().to_representation(MOMENT.isoformat())

    assert shown == serializers.DateTimeField().to_representation(MOMENT)
    assert shown == "2025-01-02T03:04:05.678000Z"


def test_a_datetime_is_shown_as_it_is():
    assert StoredDateTimeField().to_representation(MOMENT) == "2025-01-02T03:04:05.678000Z"

"""Filters of the event log API, and the date filter every list of the API uses."""

from datetime import UTC, timedelta

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from eventstore.models import Event

# PostgreSQL refuses a UTC offset of 16 hours or more (Python parses up to 23:59).
MAX_UTC_OFFSET = timedelta(hours=16)
DATE_TIME_HELP = (
    "ISO 8601 date and time, e.g. 2025-01-31T12:00:00Z; a UTC offset under 16 hours, "
    "years 1 to 9999 in UTC."
)


class StorableDateTimeField(IsoDateTimeField):
    """An ISO 8601 date and time that every supported database can compare with.

    Refuses (a 400 naming the filter) a UTC offset of 16 hours or more, and an instant that
    falls outside years 1 to 9999 once in UTC, the time zone columns are stored in.
    """

    default_error_messages = {
        "offset": "The UTC offset must be less than 16 hours.",
        "range": "The time must fall within years 1 to 9999 in UTC.",
    }

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return value
        offset = value.utcoffset()
        if offset is not None and abs(offset) >= MAX_UTC_OFFSET:
            raise ValidationError(self.error_messages["offset"], code="offset")
        try:
            value.astimezone(UTC)
        except OverflowError as error:
            raise ValidationError(self.error_messages["range"], code="range") from error
        return value


class StorableDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date filter that answers 400, never 500, for an instant no database stores."""

    field_class = StorableDateTimeField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", DATE_TIME_HELP)
        super().__init__(*args, **kwargs)


class EventFilter(django_filters.FilterSet):
    """Narrow the log by stream, type, correlation id, position and time."""

    correlation_id = django_filters.CharFilter(label="Correlation id (the order id)")
    after_position = django_filters.NumberFilter(
        field_name="position", lookup_expr="gt", label="Only events after this position"
    )
    recorded_after = StorableDateTimeFilter(field_name="recorded_at", lookup_expr="gte")
    recorded_before = StorableDateTimeFilter(field_name="recorded_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ("aggregate_type", "aggregate_id", "event_type")

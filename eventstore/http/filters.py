"""Filters of the event log API, and the date filter every list of the API uses."""

from datetime import UTC, datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from eventstore.models import Event

DATE_TIME_HELP = "ISO 8601 date and time with a UTC offset, e.g. 2025-01-31T12:00:00Z."


class StorableDateTimeField(IsoDateTimeField):
    """An ISO 8601 date and time that every supported database can compare with: the instant
    in UTC. PostgreSQL refuses a UTC offset of 16 hours or more in a literal, which Python
    parses (up to 23:59), and an instant before year 1 or after year 9999 in UTC exists in no
    column: it becomes the first or last instant a column can hold, which compares the same
    with every stored time."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None or value.utcoffset() is None:
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError:
            earliest = datetime.min.replace(tzinfo=UTC)
            return earliest if value.year == datetime.min.year else datetime.max.replace(tzinfo=UTC)


class StorableDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date filter that compares the instant it names, never a 500, whatever offset
    or year the value is written with."""

    field_class = StorableDateTimeField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", DATE_TIME_HELP)
        super().__init__(*args, **kwargs)


class IntegerFilter(django_filters.NumberFilter):
    """A whole-number filter: 0.5 is a 400, as the schema (integer) says."""

    field_class = forms.IntegerField


class EventFilter(django_filters.FilterSet):
    """Narrow the log by stream, type, correlation id, position and time."""

    correlation_id = django_filters.CharFilter(label="Correlation id (the order id)")
    after_position = IntegerFilter(
        field_name="position", lookup_expr="gt", label="Only events after this position"
    )
    recorded_after = StorableDateTimeFilter(field_name="recorded_at", lookup_expr="gte")
    recorded_before = StorableDateTimeFilter(field_name="recorded_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ("aggregate_type", "aggregate_id", "event_type")

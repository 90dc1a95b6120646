"""Filters of the event log API."""

import django_filters

from eventstore.models import Event


class EventFilter(django_filters.FilterSet):
    """Narrow the log by stream, type, correlation id, position and time."""

    correlation_id = django_filters.CharFilter(label="Correlation id (the order id)")
    after_position = django_filters.NumberFilter(
        field_name="position", lookup_expr="gt", label="Only events after this position"
    )
    recorded_after = django_filters.IsoDateTimeFilter(field_name="recorded_at", lookup_expr="gte")
    recorded_before = django_filters.IsoDateTimeFilter(field_name="recorded_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ("aggregate_type", "aggregate_id", "event_type")

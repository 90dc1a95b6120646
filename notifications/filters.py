"""Filters of the notification list."""

import django_filters

from eventstore.filters import StorableDateTimeFilter
from notifications.models import SentNotification


class SentNotificationFilter(django_filters.FilterSet):
    """Narrow notifications by customer, order, type, delivery status and time."""

    sent_after = StorableDateTimeFilter(field_name="sent_at", lookup_expr="gte")
    sent_before = StorableDateTimeFilter(field_name="sent_at", lookup_expr="lt")

    class Meta:
        model = SentNotification
        fields = ("customer_id", "order_id", "type", "delivery_status")

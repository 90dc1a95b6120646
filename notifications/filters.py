"""Filters of the notification list."""

import django_filters

from eventstore.api import StorableDateTimeFilter
from notifications.models import PushSubscription, SentNotification


class SentNotificationFilter(django_filters.FilterSet):
    """Narrow notifications by customer, order, type, email and push delivery status and time."""

    sent_after = StorableDateTimeFilter(field_name="sent_at", lookup_expr="gte")
    sent_before = StorableDateTimeFilter(field_name="sent_at", lookup_expr="lt")

    class Meta:
        model = SentNotification
        fields = ("customer_id", "order_id", "type", "delivery_status", "push_status")


class PushSubscriptionFilter(django_filters.FilterSet):
    """Narrow push subscriptions by customer and status."""

    class Meta:
        model = PushSubscription
        fields = ("customer_id", "status")

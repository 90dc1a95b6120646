"""Filters of the order list."""

import django_filters

from eventstore.api import StorableDateTimeFilter
from orders.models import OrderSummary


class OrderFilter(django_filters.FilterSet):
    """Narrow orders by status, customer (staff) and creation time."""

    created_after = StorableDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = StorableDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = OrderSummary
        fields = ("status", "customer_id")

"""Filters of the order list."""

import django_filters

from orders.models import OrderSummary


class OrderFilter(django_filters.FilterSet):
    """Narrow orders by status, customer (staff) and creation time."""

    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = OrderSummary
        fields = ("status", "customer_id")

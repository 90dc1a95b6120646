"""Filters of the payment list."""

import django_filters

from payments.models import PaymentSummary


class PaymentFilter(django_filters.FilterSet):
    """Narrow payments by outcome and by customer."""

    class Meta:
        model = PaymentSummary
        fields = ("status", "customer_id")

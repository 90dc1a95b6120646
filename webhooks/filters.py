"""Filters of the deliveries list."""

import django_filters

from webhooks.models import Delivery, Endpoint


class EndpointFilter(django_filters.FilterSet):
    enabled = django_filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")], coerce=lambda value: value == "true"
    )

    class Meta:
        model = Endpoint
        fields = ("enabled",)


class DeliveryFilter(django_filters.FilterSet):
    endpoint = django_filters.UUIDFilter(field_name="endpoint_id")

    class Meta:
        model = Delivery
        fields = ("endpoint", "status", "event_type")

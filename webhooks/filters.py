"""Filters of the deliveries list."""

import django_filters

from webhooks.models import Delivery, Endpoint, Replay


class EndpointFilter(django_filters.FilterSet):
    # A choice filter, not a BooleanFilter: an unrecognised value answers 400.
    enabled = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_enabled"
    )

    class Meta:
        model = Endpoint
        fields = ("enabled",)

    def filter_enabled(self, queryset, name, value: str):
        return queryset.filter(enabled=value == "true")


class DeliveryFilter(django_filters.FilterSet):
    endpoint = django_filters.UUIDFilter(field_name="endpoint_id")

    class Meta:
        model = Delivery
        fields = ("endpoint", "status", "event_type")


class ReplayFilter(django_filters.FilterSet):
    endpoint = django_filters.UUIDFilter(field_name="endpoint_id")

    class Meta:
        model = Replay
        fields = ("endpoint", "status")

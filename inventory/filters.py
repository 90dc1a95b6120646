"""Filters of the inventory list."""

import django_filters

from inventory.models import ProductStock


class ProductStockFilter(django_filters.FilterSet):
    """Narrow products by name, by whether any unit is available, and by status."""

    name = django_filters.CharFilter(lookup_expr="icontains", label="Name contains")
    # A choice filter, not a BooleanFilter: an unrecognised value answers 400 instead of being
    # ignored (which would list every product as if it matched).
    in_stock = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_in_stock",
        label="Has units available",
    )

    status = django_filters.ChoiceFilter(choices=ProductStock.Status.choices, label="Status")
    discontinued = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_discontinued",
        label="Is discontinued",
    )

    class Meta:
        model = ProductStock
        fields = ("name", "in_stock", "status", "discontinued")

    def filter_in_stock(self, queryset, name, value):
        return queryset.in_stock() if value == "true" else queryset.filter(available_stock=0)

    def filter_discontinued(self, queryset, name, value):
        if value == "true":
            return queryset.filter(status=ProductStock.Status.DISCONTINUED)
        return queryset.on_sale()

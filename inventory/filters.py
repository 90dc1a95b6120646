"""Filters of the inventory list."""

import django_filters

from inventory.models import ProductStock


class ProductStockFilter(django_filters.FilterSet):
    """Narrow products by name and by whether any unit is available."""

    name = django_filters.CharFilter(lookup_expr="icontains", label="Name contains")
    in_stock = django_filters.BooleanFilter(method="filter_in_stock", label="Has units available")

    class Meta:
        model = ProductStock
        fields = ("name", "in_stock")

    def filter_in_stock(self, queryset, name, value):
        return queryset.in_stock() if value else queryset.filter(available_stock=0)

"""Inventory's input and output serializers (shapes only; the rules live in services)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from httpapi.errors import UnprocessableInput
from httpapi.fields import (
    OPTIONAL_TEXT_PATTERN,
    AmountField,
    StringField,
    identifier_field,
    text_field,
)
from inventory import events
from inventory.models import ProductStock

# Why a change was made, as staff write it (the events keep it).
REASON_MAX_LENGTH = 200

# Router paths under /api/inventory/ that a product id must not shadow.
RESERVED_PRODUCT_IDS = frozenset({"reserve", "release"})


class ProductCreateInputSerializer(serializers.Serializer):
    product_id = identifier_field()
    name = text_field(max_length=200)
    price = AmountField()
    initial_stock = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)

    def validate_product_id(self, value: str) -> str:
        if value in RESERVED_PRODUCT_IDS:
            raise serializers.ValidationError(f"{value!r} is reserved for an API path.")
        return value


class RestockInputSerializer(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)


def reason_field(*, max_length: int = REASON_MAX_LENGTH, **kwargs) -> serializers.CharField:
    """An optional short text saying why staff made a change (a JSON string; a number or a
    boolean is refused, as the schema says)."""
    return StringField(
        OPTIONAL_TEXT_PATTERN,
        max_length=max_length,
        allow_blank=True,
        default="",
        error_messages={"invalid": "Must be a string."},
        **kwargs,
    )


class ProductUpdateInputSerializer(serializers.Serializer):
    price = AmountField(required=False, help_text="The price of reservations made from now on.")
    name = text_field(max_length=200, required=False)
    reason = reason_field(help_text="Why (kept in the product's history).")


class ReasonInputSerializer(serializers.Serializer):
    reason = reason_field(help_text="Why (kept in the product's history).")


@extend_schema_field(
    {"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000, "not": {"enum": [0]}}
)
class SignedQuantityField(serializers.IntegerField):
    """A number of units to add (positive) or remove (negative): -1,000,000 to 1,000,000, not 0."""

    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=-1_000_000, max_value=1_000_000, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value == 0:
            raise serializers.ValidationError("Must not be 0.")
        return value


class AdjustInputSerializer(serializers.Serializer):
    quantity = SignedQuantityField(
        help_text="Units to add to (positive) or remove from (negative) the available stock; not 0."
    )
    reason = serializers.ChoiceField(choices=events.ADJUSTMENT_REASONS)
    note = reason_field(max_length=500, help_text="Details, for the product's history.")


class LineInputSerializer(serializers.Serializer):
    product_id = identifier_field()
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)


class ReserveInputSerializer(serializers.Serializer):
    reservation_id = identifier_field()
    # A ListField, not `many=True`, so that the schema states the line count (minItems, maxItems).
    items = serializers.ListField(child=LineInputSerializer(), min_length=1, max_length=100)

    def validate_items(self, items):
        product_ids = [item["product_id"] for item in items]
        duplicates = sorted({p for p in product_ids if product_ids.count(p) > 1})
        if duplicates:
            raise UnprocessableInput(
                "items", f"Each product may appear once; repeated: {', '.join(duplicates)}."
            )
        known = set(ProductStock.objects.filter(pk__in=product_ids).values_list("pk", flat=True))
        unknown = [p for p in product_ids if p not in known]
        if unknown:
            raise UnprocessableInput("items", f"Unknown product(s): {', '.join(unknown)}.")
        return items


class ReleaseInputSerializer(serializers.Serializer):
    reservation_id = identifier_field()


class ProductOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProductStock
        fields = (
            "product_id",
            "name",
            "price",
            "status",
            "available_stock",
            "reserved_stock",
            "sold_stock",
        )
        read_only_fields = fields


class ReservedLineOutputSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)


class ReservationOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    reservation_id = serializers.CharField()
    lines = ReservedLineOutputSerializer(many=True)


class ShortLineOutputSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    requested = serializers.IntegerField()
    available = serializers.IntegerField()


class ReservationFailedOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    reason = serializers.ChoiceField(
        choices=["insufficient_stock", "unknown_product", "released"],
        help_text="released: the reservation id was released before anything was reserved.",
    )
    details = ShortLineOutputSerializer(many=True)

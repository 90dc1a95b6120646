"""Orders' input and output serializers (shapes only; the rules live in services)."""

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from httpapi.fields import StringField, identifier_field
from orders.aggregates import Saga
from orders.models import OrderSummary, SagaSummary
from orders.services import DEFAULT_PAYMENT_TOKEN, MAX_LINES, MAX_QUANTITY


class OrderLineInputSerializer(serializers.Serializer):
    product_id = identifier_field()
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class PlaceOrderInputSerializer(serializers.Serializer):
    customer_id = identifier_field(
        required=False,
        help_text="Staff only: the customer the order is for (default: the caller).",
    )
    # A ListField, not `many=True`, so that the schema states the line count (minItems, maxItems).
    items = serializers.ListField(
        child=OrderLineInputSerializer(),
        min_length=1,
        max_length=MAX_LINES,
        help_text=f"1 to {MAX_LINES} lines, each product at most once.",
    )
    payment_token = StringField(
        r"^[A-Za-z0-9_]{1,64}$",
        max_length=64,
        error_messages={"invalid": "Must be 1 to 64 letters, digits or '_'."},
        default=DEFAULT_PAYMENT_TOKEN,
        help_text=(
            "The simulated gateway approves tok_visa_success, declines tok_decline and "
            "tok_insufficient_funds, and never answers tok_timeout."
        ),
    )


class CancelOrderInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why the order is cancelled (kept with the order, told to the customer).",
    )


class OrderItemOutputSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        allow_null=True,
        help_text="Inventory's price once the stock is reserved; null before.",
    )


class OrderOutputSerializer(serializers.ModelSerializer):
    items = OrderItemOutputSerializer(many=True)

    class Meta:
        model = OrderSummary
        fields = (
            "order_id",
            "customer_id",
            "status",
            "items",
            "total_amount",
            "cancel_reason",
            "cancellation_note",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


# A step's or compensation's status, under the name the schema's enum is given in settings.
SAGA_STEP_STATUSES = Saga.ENTRY_STATUSES


class StoredDateTimeField(serializers.DateTimeField):
    """A timestamp kept as an ISO 8601 string in a JSON column, shown like every other one."""

    def to_representation(self, value):
        if isinstance(value, str):
            value = parse_datetime(value)
        return super().to_representation(value)


class SagaStepOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=SAGA_STEP_STATUSES)
    started_at = StoredDateTimeField(allow_null=True)
    finished_at = StoredDateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class SagaCompensationOutputSerializer(SagaStepOutputSerializer):
    attempts = serializers.IntegerField(source="attempt", help_text="Requests sent so far.")


class SagaOutputSerializer(serializers.ModelSerializer):
    steps = SagaStepOutputSerializer(many=True)
    compensations = SagaCompensationOutputSerializer(many=True)

    class Meta:
        model = SagaSummary
        fields = (
            "saga_id",
            "order_id",
            "kind",
            "state",
            "current_step",
            "definition_version",
            "steps",
            "compensations",
            "waiting_for",
            "waiting_since",
            "started_at",
            "updated_at",
        )
        read_only_fields = fields


class OrderSagaOutputSerializer(SagaOutputSerializer):
    """The fulfilment saga, with the cancellation saga of the order (null until one starts)."""

    cancellation = serializers.SerializerMethodField()

    class Meta(SagaOutputSerializer.Meta):
        fields = (*SagaOutputSerializer.Meta.fields, "cancellation")
        read_only_fields = fields

    @extend_schema_field(SagaOutputSerializer(allow_null=True))
    def get_cancellation(self, saga: SagaSummary):
        found = self.context.get("cancellation")
        return None if found is None else SagaOutputSerializer(found).data

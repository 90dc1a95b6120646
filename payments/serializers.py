"""Payments' input and output serializers (shapes only; the rules live in services)."""

from rest_framework import serializers

from httpapi.fields import AmountField, StringField, identifier_field, text_field
from payments.gateway import DEFAULT_TOKEN
from payments.models import PaymentSummary

# Router paths under /api/payments/ that a payment id must not shadow.
RESERVED_PAYMENT_IDS = frozenset({"charge", "refund"})


class ChargeInputSerializer(serializers.Serializer):
    payment_id = identifier_field()
    customer_id = identifier_field()
    amount = AmountField()
    payment_token = StringField(
        r"^[A-Za-z0-9_]{1,64}$",
        max_length=64,
        default=DEFAULT_TOKEN,
        help_text="The card token; the simulated gateway decides by it (see API.md).",
        error_messages={"invalid": "Must be 1 to 64 letters, digits or '_'."},
    )

    def validate_payment_id(self, value: str) -> str:
        if value in RESERVED_PAYMENT_IDS:
            raise serializers.ValidationError(f"{value!r} is reserved for an API path.")
        return value


class RefundInputSerializer(serializers.Serializer):
    transaction_id = text_field(max_length=64)


class ChargeOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    transaction_id = serializers.CharField()


class ChargeFailedOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    reason = serializers.CharField(
        help_text="card_declined, insufficient_funds, invalid_token, processing_error, "
        "or gateway_timeout (504)."
    )


class PaymentOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentSummary
        fields = ("payment_id", "customer_id", "amount", "status", "transaction_id", "reason")
        read_only_fields = fields

"""Notifications' input and output serializers (shapes only; the rules live in services)."""

from rest_framework import serializers

from httpapi.fields import IDENTIFIER_HELP, StringField, identifier_field, text_field
from notifications.models import SentNotification


class SendInputSerializer(serializers.Serializer):
    customer_id = identifier_field()
    type = StringField(
        r"^[a-z0-9_]{1,64}$",
        max_length=64,
        help_text="What the notification is about, e.g. order_confirmed or promotion.",
        error_messages={"invalid": "Must be 1 to 64 lowercase letters, digits or '_'."},
    )
    message = text_field(max_length=2000, min_length=1)
    order_id = identifier_field(
        required=False,
        default="",
        help_text="The order it is about: one of the customer's orders. " + IDENTIFIER_HELP,
    )


class SendOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    notification_id = serializers.CharField()


class NotificationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = SentNotification
        fields = (
            "notification_id",
            "type",
            "message",
            "order_id",
            "channel",
            "sent_at",
            "delivery_status",
            "delivered_at",
        )
        read_only_fields = fields


class NotificationListOutputSerializer(NotificationOutputSerializer):
    class Meta(NotificationOutputSerializer.Meta):
        fields = ("notification_id", "customer_id", *NotificationOutputSerializer.Meta.fields[1:])
        read_only_fields = fields

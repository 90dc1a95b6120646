"""Notifications' input and output serializers (shapes only; the rules live in services)."""

from rest_framework import serializers

from httpapi.fields import IDENTIFIER_HELP, StringField, identifier_field, text_field
from notifications.models import PushSubscription, SentNotification


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
            "push_status",
            "pushed",
        )
        read_only_fields = fields


class NotificationListOutputSerializer(NotificationOutputSerializer):
    class Meta(NotificationOutputSerializer.Meta):
        fields = ("notification_id", "customer_id", *NotificationOutputSerializer.Meta.fields[1:])
        read_only_fields = fields


class PushSubscriptionKeysInputSerializer(serializers.Serializer):
    p256dh = StringField(
        r"^[A-Za-z0-9_-]{87}=?$",
        help_text="base64url of the browser's P-256 public key (65 bytes, uncompressed).",
        error_messages={"invalid": "Must be base64url of 65 bytes (87 characters)."},
    )
    auth = StringField(
        r"^[A-Za-z0-9_-]{22}(==)?$",
        help_text="base64url of the browser's auth secret (16 bytes).",
        error_messages={"invalid": "Must be base64url of 16 bytes (22 characters)."},
    )


class PushSubscriptionInputSerializer(serializers.Serializer):
    """A browser's PushSubscription as its toJSON() gives it."""

    endpoint = StringField(
        r"^https://[!-~]{1,1990}$",
        max_length=2000,
        help_text="The push service's URL (https, on a public host).",
        error_messages={"invalid": "Must be an https URL (printable ASCII)."},
    )
    keys = PushSubscriptionKeysInputSerializer()
    expirationTime = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="Milliseconds since the epoch."
    )


class PushSubscriptionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = PushSubscription
        fields = (
            "subscription_id",
            "customer_id",
            "endpoint",
            "expiration_time",
            "status",
            "created_at",
            "removed_at",
        )
        read_only_fields = fields


class VapidPublicKeyOutputSerializer(serializers.Serializer):
    public_key = serializers.CharField(
        help_text="The VAPID public key for PushManager.subscribe's applicationServerKey "
        "(base64url of the uncompressed P-256 point)."
    )

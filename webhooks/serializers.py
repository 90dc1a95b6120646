"""The webhooks API's bodies: endpoints (the secret only in the answer that creates or rotates
it), deliveries with their attempts, and the replay request."""

from __future__ import annotations

from rest_framework import serializers

from webhooks.events import PUBLIC_EVENT_TYPES
from webhooks.models import Attempt, Delivery, Endpoint, Replay


class EndpointSerializer(serializers.ModelSerializer):
    # Checked by the service (scheme, host, its addresses): 422 when it may not receive webhooks.
    url = serializers.CharField(max_length=2000, min_length=1)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=PUBLIC_EVENT_TYPES),
        required=False,
        help_text="Public event types wanted; empty: all.",
    )

    class Meta:
        model = Endpoint
        fields = (
            "endpoint_id",
            "url",
            "event_types",
            "description",
            "enabled",
            "disabled_reason",
            "failing_since",
            "previous_secret_until",
            "created_at",
        )
        read_only_fields = (
            "endpoint_id",
            "disabled_reason",
            "failing_since",
            "previous_secret_until",
            "created_at",
        )


class EndpointWithSecretSerializer(EndpointSerializer):
    """An endpoint with its signing secret: only in the answer that creates or rotates it."""

    secret = serializers.CharField(read_only=True)

    class Meta(EndpointSerializer.Meta):
        fields = (*EndpointSerializer.Meta.fields, "secret")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ("attempted_at", "status_code", "duration_ms", "response_excerpt", "error")


class DeliverySerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(read_only=True)
    endpoint_id = serializers.UUIDField(read_only=True)
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = (
            "id",
            "webhook_id",
            "endpoint_id",
            "event_id",
            "position",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "attempt_log",
        )


class ReplayInputSerializer(serializers.Serializer):
    after_position = serializers.IntegerField(min_value=0, default=0)
    to_position = serializers.IntegerField(min_value=1, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class ReplayOutputSerializer(serializers.ModelSerializer):
    endpoint_id = serializers.UUIDField(read_only=True)
    events = serializers.IntegerField(help_text="Events owed to the endpoint again so far.")
    reached = serializers.IntegerField(help_text="The log position read up to so far.")
    progress = serializers.FloatField(help_text="The share of the range read, 0 to 1.")

    class Meta:
        model = Replay
        fields = (
            "replay_id",
            "endpoint_id",
            "after_position",
            "to_position",
            "since",
            "until",
            "status",
            "reached",
            "events",
            "progress",
            "created_at",
            "finished_at",
        )

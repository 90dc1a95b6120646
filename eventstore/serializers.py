"""Output serializers for the event log API."""

from rest_framework import serializers

from eventstore.models import Event


class EventOutputSerializer(serializers.ModelSerializer):
    """One stored event as the log shows it."""

    class Meta:
        model = Event
        fields = (
            "position",
            "event_id",
            "aggregate_type",
            "aggregate_id",
            "version",
            "event_type",
            "schema_version",
            "payload",
            "metadata",
            "recorded_at",
        )
        read_only_fields = fields


class HealthOutputSerializer(serializers.Serializer):
    """The health check's answer."""

    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    database = serializers.CharField()

"""Output serializers for the event log API."""

from rest_framework import serializers

from eventstore.models import Event


class EventOutputSerializer(serializers.ModelSerializer):
    """One stored event as readers see it: an old payload upcast to the newest schema version
    (so a payment token an old event held reads masked)."""

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

    def to_representation(self, instance: Event) -> dict:
        data = super().to_representation(instance)
        data["schema_version"], data["payload"] = instance.read_payload()
        return data


class HealthOutputSerializer(serializers.Serializer):
    """The health check's answer."""

    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    database = serializers.CharField()

"""Output serializers for the event log API."""

from rest_framework import serializers

from eventstore.models import Event
from eventstore.records import SHOWN_FIELDS


class EventOutputSerializer(serializers.ModelSerializer):
    """One stored event as readers see it: an old payload upcast to the newest schema version
    (so a payment token an old event held reads masked)."""

    class Meta:
        model = Event
        fields = SHOWN_FIELDS
        read_only_fields = fields

    def to_representation(self, instance: Event) -> dict:
        data = super().to_representation(instance)
        data["schema_version"], data["payload"] = instance.read_payload()
        return data


class HeldByOutputSerializer(serializers.Serializer):
    """A running transaction that has taken a transaction id, as pg_stat_activity shows it."""

    seconds = serializers.FloatField(
        allow_null=True, help_text="Its age (null where pg_stat_activity hides it)."
    )
    pid = serializers.IntegerField(help_text="Its backend's process id.")
    application_name = serializers.CharField(allow_null=True)
    state = serializers.CharField(allow_null=True, help_text='e.g. "idle in transaction".')


class FollowersOutputSerializer(serializers.Serializer):
    """How far subscribers are held back by running transactions (PostgreSQL only)."""

    oldest_transaction_seconds = serializers.FloatField(
        help_text="Age of the oldest running transaction subscribers wait for (one of the "
        "project's, DATABASE_APPLICATION_NAME): they read no event committed after it started "
        "until it ends."
    )
    waiting_for = HeldByOutputSerializer(
        allow_null=True, help_text="That transaction (null when there is none)."
    )
    oldest_ignored = HeldByOutputSerializer(
        allow_null=True,
        help_text="The oldest running transaction of the database that subscribers do not wait "
        "for (another application's).",
    )
    held = serializers.CharField(
        help_text='"ok", or which transaction has held subscribers back longer than '
        "HEALTH_MAX_HELD_SECONDS (answers 503)."
    )
    events_behind_horizon = serializers.IntegerField(
        help_text="Committed events that subscribers cannot read yet for that reason."
    )
    transaction_ids_ahead = serializers.BooleanField(
        help_text="The log holds transaction ids the database has not reached (a dump restored "
        "into a new cluster): new events would sort before them. Answers 503."
    )


class LagOutputSerializer(serializers.Serializer):
    """The subscriber partition furthest behind the log."""

    subscriber = serializers.CharField()
    partition = serializers.IntegerField()
    events = serializers.IntegerField(
        help_text="Events it reads between its checkpoint and what followers can read now: "
        "counted up to HEALTH_MAX_LAG_EVENTS, estimated past it (see `exact`)."
    )
    exact = serializers.BooleanField(
        help_text="Whether `events` was counted. False past HEALTH_MAX_LAG_EVENTS: then it is "
        "an estimate from log positions (never below the limit plus one), so a probe costs no "
        "more with a large backlog."
    )


class HealthOutputSerializer(serializers.Serializer):
    """The health check's answer."""

    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    database = serializers.CharField(help_text='"ok", or what is wrong with it (answers 503).')
    followers = FollowersOutputSerializer(required=False, help_text="PostgreSQL only.")
    backlog_seconds = serializers.FloatField(
        required=False,
        help_text="How long the oldest work not started has waited; placing an order answers 429 "
        "while it is over ADMISSION_MAX_BACKLOG_SECONDS (shown, never answers 503). Absent when "
        "the database is unreachable.",
    )
    subscribers = serializers.CharField(
        required=False,
        help_text='"ok", or which partition is more than HEALTH_MAX_LAG_EVENTS events behind '
        "(answers 503). Absent when the database is unreachable.",
    )
    largest_lag = LagOutputSerializer(
        required=False,
        allow_null=True,
        help_text="The partition furthest behind (null with no subscriber registered). Absent "
        "when the database is unreachable.",
    )
    broker = serializers.CharField(
        required=False,
        help_text='Celery mode only: "ok", or "unreachable: <error>" (answers 503).',
    )

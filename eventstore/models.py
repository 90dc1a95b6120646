"""Tables of the event store: the append-only log, snapshots, checkpoints, and the stream index."""

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from eventstore.upcasting import upcast


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove a stored event."""


class EventQuerySet(models.QuerySet):
    """Queryset over the log that refuses every bulk change: events are never rewritten."""

    def update(self, **kwargs):
        raise AppendOnlyError("Events are append-only: they cannot be updated")

    def delete(self):
        raise AppendOnlyError("Events are append-only: they cannot be deleted")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("Events are append-only: they cannot be updated")

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs):
        raise AppendOnlyError("Events are append-only: they cannot be updated")


class Event(models.Model):
    """One stored event: `position` orders the whole log, `version` orders one stream."""

    position = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=128)
    version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=128)
    schema_version = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    metadata = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    # A copy of metadata["correlation_id"], written with the row, so "every event of order X"
    # is an index range scan on both SQLite and PostgreSQL rather than a JSON scan ("" for none).
    correlation_id = models.CharField(max_length=128, blank=True, default="", editable=False)
    # The event's partition key (its correlation id, else its aggregate id) hashed at append
    # time: a subscriber split into N partitions reads, in partition p, the events whose
    # partition_hash % N == p (eventstore.store.partition_hash).
    partition_hash = models.IntegerField(db_default=0, editable=False)
    recorded_at = models.DateTimeField()
    # Followers read the log in (transaction_id, position) order, up to the oldest transaction
    # still running (PostgresRecorder.follow_condition). On PostgreSQL it is the appending
    # transaction's id (pg_current_xact_id), raised to the stream's previous event's when that
    # is higher, so a stream's events keep their order; 0 on SQLite, whose single writer
    # commits positions in order, and for events stored before concurrent appends.
    transaction_id = models.BigIntegerField(db_default=0, editable=False)

    objects = EventQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id", "version"],
                name="eventstore_event_stream_version_uniq",
            )
        ]
        indexes = [
            models.Index(fields=["event_type", "position"], name="eventstore_event_type_idx"),
            models.Index(fields=["correlation_id", "position"], name="eventstore_event_corr_idx"),
            models.Index(fields=["transaction_id", "position"], name="eventstore_event_follow_idx"),
        ]
        ordering = ["position"]

    def __str__(self) -> str:
        stream = f"{self.aggregate_type}/{self.aggregate_id}"
        return f"#{self.position} {self.event_type} {stream} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Events are append-only: a stored event cannot be saved again")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Events are append-only: they cannot be deleted")

    def read_payload(self) -> tuple[int, dict]:
        """The schema version and payload readers see: upcast to the newest schema, so every
        API, admin page or export shows what aggregates see (e.g. a masked payment token)."""
        return upcast(self.event_type, self.schema_version, self.payload)


class Snapshot(models.Model):
    """The latest saved state of one aggregate: a cache that loading may start from."""

    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=128)
    version = models.PositiveIntegerField(help_text="Stream version the state includes.")
    state_version = models.PositiveSmallIntegerField(
        default=1, help_text="Format of `state`; a snapshot of another format is ignored."
    )
    state = models.JSONField(encoder=DjangoJSONEncoder)
    taken_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id"], name="eventstore_snapshot_stream_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type}/{self.aggregate_id} at v{self.version}"


class Checkpoint(models.Model):
    """How far one partition of a named subscriber has handled the log; advanced in the
    transaction that handles. A subscriber split into `partitions` has one row per partition."""

    name = models.CharField(
        max_length=160, primary_key=True, help_text="subscriber#partition/partitions"
    )
    subscriber = models.CharField(max_length=128)
    partition = models.PositiveIntegerField(default=0)
    partitions = models.PositiveIntegerField(
        default=1, help_text="How many partitions the subscriber was split into."
    )
    position = models.BigIntegerField(
        default=0, help_text="Position of the last event of this partition handled."
    )
    transaction_id = models.BigIntegerField(
        default=0,
        db_default=0,
        help_text="Transaction id of the last event of this partition handled.",
    )
    handled_before = models.JSONField(
        null=True,
        blank=True,
        help_text="After a change of the partition count: the previous partitions' "
        "[transaction id, position] pairs; an event at or before its previous partition's "
        "pair was handled already.",
    )
    last_error = models.TextField(blank=True, default="")
    failed_position = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "partitions", "partition"],
                name="eventstore_checkpoint_partition_uniq",
            )
        ]
        ordering = ["subscriber", "partitions", "partition"]

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"

    @staticmethod
    def name_for(subscriber: str, partition: int, partitions: int) -> str:
        """The row's name: subscriber#partition/partitions (orders.saga#3/16)."""
        return f"{subscriber}#{partition}/{partitions}"


class Stream(models.Model):
    """Read model: one row per aggregate stream with its current version and last event."""

    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=128)
    version = models.PositiveIntegerField()
    last_event_type = models.CharField(max_length=128)
    last_position = models.BigIntegerField()
    first_recorded_at = models.DateTimeField()
    last_recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id"], name="eventstore_stream_uniq"
            )
        ]
        ordering = ["aggregate_type", "aggregate_id"]

    def __str__(self) -> str:
        return f"{self.aggregate_type}/{self.aggregate_id} v{self.version}"


class Effect(models.Model):
    """A call to the outside world that an effect subscriber owes for one event.

    Recorded in the transaction that advances the subscriber's checkpoint; performed after that
    commit with no transaction open; `done` once its outcome is recorded, `parked` when it gave up
    (`manage.py retry_effects` makes it pending again), `withdrawn` when the event that asked for
    it no longer wants it (never made after that; one already attempted is reconciled with the
    provider while `due_at` is set). Operational state, like checkpoints: the outcome itself is
    an event.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        PARKED = "parked"
        WITHDRAWN = "withdrawn"

    subscriber = models.CharField(max_length=128)
    event_id = models.UUIDField(help_text="The event that asked for the call (the intent).")
    position = models.BigIntegerField(help_text="Position of that event in the log.")
    event_type = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Calls made so far (for a withdrawn call, and lookups)."
    )
    due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Not called again before this time (a retry's backoff, or a running call's "
        "lease); a withdrawn call is reconciled then (None: nothing is left to do).",
    )
    claim = models.UUIDField(
        null=True, blank=True, help_text="Token of the call in progress (fences a late finish)."
    )
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the first call began (None: not called yet)."
    )
    last_error = models.TextField(blank=True, default="")
    withdrawn_at = models.DateTimeField(
        null=True, blank=True, help_text="When the call was withdrawn (None: it was not)."
    )
    # A database default: the statements that owe calls name only the columns they set.
    withdrawn_reason = models.TextField(
        blank=True, db_default="", help_text="Which event withdrew the call, and why."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Event id first: "the calls owed for this event" is one index seek.
            models.UniqueConstraint(
                fields=["event_id", "subscriber"], name="eventstore_effect_event_uniq"
            )
        ]
        indexes = [
            models.Index(
                fields=["subscriber", "status", "due_at"], name="eventstore_effect_due_idx"
            )
        ]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.subscriber} #{self.position} {self.event_type} ({self.status})"


class VaultedSecret(models.Model):
    """A secret kept out of the log (e.g. a payment token): events carry only its `reference`.

    Short-lived by design: the service that uses the secret erases it once done, and any row
    past `erase_after` is erased by the next worker pass. Never shown by an API or the admin.
    `secret` holds the secret encrypted (eventstore.vault, VAULT_KEYS), never in clear.
    """

    reference = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, help_text="What the secret is, e.g. payment_token.")
    secret = models.TextField(help_text="The secret as a Fernet token (url-safe base64 text).")
    created_at = models.DateTimeField(auto_now_add=True)
    erase_after = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"

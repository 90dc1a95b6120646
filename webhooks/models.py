"""Webhook endpoints, one delivery per (endpoint, event), and every attempt of each."""

from __future__ import annotations

import uuid

from django.db import models


class Endpoint(models.Model):
    """A URL the shop's own systems receive public events at, signed with its secret: the
    projection of its WebhookEndpoint stream (webhooks.projections), but for `failing_since`,
    which deliveries keep (a rebuild starts it afresh). The secrets are in the vault; the row
    holds their references."""

    endpoint_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000)
    # Public event types wanted; empty: all.
    event_types = models.JSONField(default=list, blank=True)
    description = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    secret_ref = models.CharField(max_length=64, editable=False)
    # The secret before the last rotation, still signed with until `previous_secret_until`.
    previous_secret_ref = models.CharField(max_length=64, blank=True, editable=False)
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Since when every delivery failed (None: the last one succeeded, or none failed).
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url

    def wants(self, public_type: str) -> bool:
        return not self.event_types or public_type in self.event_types

    def receives(self, event, public_type: str) -> bool:
        """Whether the event of this public type is sent to it as it happens: one it wants,
        recorded since it was registered (older ones only by replay)."""
        return self.wants(public_type) and event.recorded_at >= self.created_at


class Delivery(models.Model):
    """One public event owed to one endpoint; its id is the `webhook-id` of every attempt."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # no further attempt without staff (redeliver)

    # No cascade: the endpoint's row is a projection, deleted and written again by a rebuild;
    # deleting the endpoint (WebhookEndpointDeleted) deletes its deliveries.
    endpoint = models.ForeignKey(
        Endpoint, on_delete=models.DO_NOTHING, db_constraint=False, related_name="deliveries"
    )
    event_id = models.UUIDField()
    position = models.BigIntegerField()
    event_type = models.CharField(max_length=50)
    body = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.position} to {self.endpoint_id}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.event_id.hex}"


class Attempt(models.Model):
    """One HTTP request of a delivery and what came of it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["attempted_at", "pk"]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"


class Replay(models.Model):
    """A replay of a range of the log to one endpoint, made by the worker's passes in batches:
    `reached` is the position it has read up to, `events` how many it owed again so far."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"

    replay_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        Endpoint, on_delete=models.DO_NOTHING, db_constraint=False, related_name="replays"
    )
    after_position = models.BigIntegerField(default=0)
    # The last position replayed: the one asked for, else the log's last when it was asked.
    to_position = models.BigIntegerField()
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    reached = models.BigIntegerField()
    events = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"replay #{self.after_position + 1}-{self.to_position} to {self.endpoint_id}"

    @property
    def progress(self) -> float:
        """The share of the range read, 0 to 1."""
        span = self.to_position - self.after_position
        return 1.0 if span <= 0 else min(1.0, (self.reached - self.after_position) / span)

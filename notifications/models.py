"""Notifications' read model: derived from events, rebuilt by `rebuild_projections`."""

from django.db import models

from notifications.aggregates import Delivery, PushDelivery


class SentNotification(models.Model):
    """A notification as GET /api/notifications/{customer_id}/ shows it, with its delivery."""

    class DeliveryStatus(models.TextChoices):
        """`failed` means parked: no automatic attempt is left (staff retry it); a failed
        attempt that will be retried keeps `pending`."""

        PENDING = Delivery.PENDING
        DELIVERED = Delivery.DELIVERED
        FAILED = Delivery.FAILED

    notification_id = models.CharField(max_length=64, primary_key=True)
    customer_id = models.CharField(max_length=64)
    order_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    type = models.CharField(max_length=64)
    channel = models.CharField(max_length=16)
    message = models.TextField()
    sent_at = models.DateTimeField(help_text="When the notification was recorded.")
    position = models.BigIntegerField(help_text="Position of the event that sent it.")
    delivery_status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    delivery_attempts = models.PositiveIntegerField(
        default=0, help_text="Delivery attempts the log records: each failure and the delivery."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_error = models.TextField(
        blank=True, default="", help_text="The last failed attempt's error (until delivered)."
    )

    class PushStatus(models.TextChoices):
        """`none`: no push attempt recorded (the customer had no live push subscription);
        `failed` means parked, as for email."""

        NONE = PushDelivery.NONE
        PENDING = PushDelivery.PENDING
        DELIVERED = PushDelivery.DELIVERED
        FAILED = PushDelivery.FAILED

    push_status = models.CharField(
        max_length=16, choices=PushStatus.choices, default=PushStatus.NONE
    )
    push_attempts = models.PositiveIntegerField(
        default=0, help_text="Failed push attempts the log records."
    )
    pushed = models.PositiveIntegerField(
        default=0, help_text="The push subscriptions the notification reached."
    )
    push_error = models.TextField(
        blank=True, default="", help_text="The last failed push attempt's error (until pushed)."
    )

    class Meta:
        ordering = ["-position"]
        indexes = [
            models.Index(fields=["customer_id", "-position"], name="notif_customer_newest_idx"),
            # Staff look for parked deliveries.
            models.Index(fields=["delivery_status", "-position"], name="notif_delivery_newest_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} to {self.customer_id}"


class OrderOwner(models.Model):
    """Which customer each order belongs to, from orders' OrderCreated events (notifications
    never ask orders): a notification about an order goes to that order's customer only."""

    order_id = models.CharField(max_length=64, primary_key=True)
    customer_id = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["order_id"]
        verbose_name = "order owner"

    def __str__(self) -> str:
        return f"order {self.order_id} of {self.customer_id}"


class PushSubscription(models.Model):
    """A customer's browser push subscription, live or ended, from its events."""

    class Status(models.TextChoices):
        """`gone`: the push service said the subscription no longer exists."""

        ACTIVE = "active"
        UNSUBSCRIBED = "unsubscribed"
        GONE = "gone"

    subscription_id = models.CharField(max_length=64, primary_key=True)
    customer_id = models.CharField(max_length=64, db_index=True)
    endpoint = models.URLField(max_length=2000)
    p256dh = models.CharField(max_length=100)
    auth = models.CharField(max_length=40)
    expiration_time = models.BigIntegerField(
        null=True, blank=True, help_text="The browser's expirationTime (ms since the epoch)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "subscription_id"]

    def __str__(self) -> str:
        return f"push subscription {self.subscription_id} of {self.customer_id}"

"""Notifications' read model: derived from events, rebuilt by `rebuild_projections`."""

from django.db import models

from notifications.aggregates import Delivery


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

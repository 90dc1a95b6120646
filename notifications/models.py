"""Notifications' read model: derived from events, rebuilt by `rebuild_projections`."""

from django.db import models


class SentNotification(models.Model):
    """A notification as GET /api/notifications/{customer_id}/ shows it."""

    notification_id = models.CharField(max_length=64, primary_key=True)
    customer_id = models.CharField(max_length=64)
    order_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    type = models.CharField(max_length=64)
    channel = models.CharField(max_length=16)
    message = models.TextField()
    sent_at = models.DateTimeField()
    position = models.BigIntegerField(help_text="Position of the event that sent it.")

    class Meta:
        ordering = ["-position"]
        indexes = [
            models.Index(fields=["customer_id", "-position"], name="notif_customer_newest_idx")
        ]

    def __str__(self) -> str:
        return f"{self.type} to {self.customer_id}"

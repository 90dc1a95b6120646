"""Payments' read model: derived from events, rebuilt by `rebuild_projections`."""

from django.db import models


class PaymentSummary(models.Model):
    """A payment as GET /api/payments/ shows it."""

    class Status(models.TextChoices):
        PROCESSED = "processed"
        FAILED = "failed"
        REFUNDED = "refunded"

    payment_id = models.CharField(max_length=64, primary_key=True)
    customer_id = models.CharField(max_length=64, db_index=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices)
    transaction_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    reason = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "payment_id"]
        verbose_name = "payment"

    def __str__(self) -> str:
        return f"{self.payment_id} {self.amount} ({self.status})"

"""Inventory's read models: derived from events, rebuilt by `rebuild_projections`."""

from django.db import models
from django.db.models import F
from django.db.models.lookups import Exact


class ProductStockQuerySet(models.QuerySet):
    def in_stock(self):
        """Products with at least one unit available."""
        return self.filter(available_stock__gt=0)

    def on_sale(self):
        """Products not discontinued: what customers see."""
        return self.filter(status=ProductStock.Status.ACTIVE)


class ProductStock(models.Model):
    """A product's name, price, status and stock as GET /api/inventory/ shows it."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        DISCONTINUED = "discontinued"

    product_id = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    available_stock = models.PositiveIntegerField(default=0)
    reserved_stock = models.PositiveIntegerField(default=0)
    sold_stock = models.PositiveIntegerField(default=0)
    received_stock = models.PositiveIntegerField(default=0)
    adjusted_stock = models.IntegerField(
        default=0, help_text="Net units staff's stock corrections added (negative: removed)."
    )
    version = models.PositiveIntegerField(help_text="Version of the product's stream applied.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = ProductStockQuerySet.as_manager()

    class Meta:
        ordering = ["product_id"]
        verbose_name = "product stock"
        verbose_name_plural = "product stock"
        constraints = [
            # A projection bug that breaks the stock invariant fails the append that caused it.
            models.CheckConstraint(
                condition=Exact(
                    F("available_stock") + F("reserved_stock") + F("sold_stock"),
                    F("received_stock") + F("adjusted_stock"),
                ),
                name="inventory_productstock_units_balance",
            )
        ]

    def __str__(self) -> str:
        return f"{self.product_id} ({self.available_stock} available)"


class ReservationSummary(models.Model):
    """A reservation's outcome and lines, for the admin."""

    class Status(models.TextChoices):
        RESERVED = "reserved"
        FAILED = "failed"
        RELEASED = "released"
        COMMITTED = "committed"
        RETURNED = "returned"

    reservation_id = models.CharField(max_length=64, primary_key=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    lines = models.JSONField(default=list)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    reason = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "reservation_id"]
        verbose_name = "reservation"

    def __str__(self) -> str:
        return f"{self.reservation_id} ({self.status})"

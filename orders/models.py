"""Orders' read models: derived from events, rebuilt by `rebuild_projections`."""

from django.db import models

from orders import events
from orders.aggregates import Cancellation, Order, Saga


class OrderSummaryQuerySet(models.QuerySet):
    def outcome_counts(self) -> dict[str, int]:
        """How many orders ended completed, were cancelled (per reason, "cancelled: <reason>"),
        were refunded after completion, or are still open (cancelling ones too), from one
        grouped query; outcomes with no orders are left out."""
        counts: dict[str, int] = {}
        grouped = (
            self.order_by().values_list("status", "cancel_reason").annotate(count=models.Count("*"))
        )
        for status, reason, count in grouped:
            if status == Order.COMPLETED:
                outcome = "completed"
            elif status == Order.REFUNDED:
                outcome = "refunded"
            elif status == Order.CANCELLED:
                outcome = f"cancelled: {reason or 'unknown'}"
            else:
                outcome = "open"
            counts[outcome] = counts.get(outcome, 0) + count
        return counts


class OrderSummary(models.Model):
    """An order as GET /api/orders/ shows it."""

    # The aggregate's statuses, so the two can never disagree.
    Status = models.TextChoices("Status", [(status.upper(), status) for status in Order.STATUSES])

    order_id = models.CharField(max_length=64, primary_key=True)
    customer_id = models.CharField(max_length=64)
    status = models.CharField(max_length=24, choices=Status.choices)
    items = models.JSONField(default=list, help_text="[{product_id, quantity, unit_price}]")
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    cancel_reason = models.CharField(max_length=64, blank=True, default="")
    cancellation_note = models.CharField(
        max_length=500, blank=True, default="", help_text="The reason given with a cancellation."
    )
    version = models.PositiveIntegerField(help_text="Version of the order's stream applied.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = OrderSummaryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "order_id"]
        verbose_name = "order"
        indexes = [
            models.Index(fields=["customer_id", "-created_at"], name="orders_customer_idx"),
            models.Index(fields=["status", "-created_at"], name="orders_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        """Whether the order has reached a status its fulfilment leaves it in (completed,
        cancelled or refunded; a completed one may still be cancelled)."""
        return self.status in Order.FINAL_STATUSES


class SagaSummaryQuerySet(models.QuerySet):
    def waiting_since_before(self, cutoff):
        """Sagas waiting for a reply requested before `cutoff`, oldest first."""
        return self.filter(waiting_since__lt=cutoff).order_by("waiting_since")

    def state_counts(self) -> dict[str, int]:
        """How many sagas are in each state (every state, 0 for none), from one grouped query."""
        counts = dict.fromkeys(Saga.STATES, 0)
        counts.update(self.order_by().values_list("state").annotate(count=models.Count("*")))
        return counts


# The saga class of each kind of SagaSummary, by the stream its events are on.
SAGA_CLASSES = {"fulfilment": Saga, "cancellation": Cancellation}
SAGA_KINDS = {events.SAGA: "fulfilment", events.CANCELLATION: "cancellation"}


def saga_summary_id(aggregate_type: str, order_id: str) -> str:
    """The SagaSummary key of a saga stream: the order id for its fulfilment, and
    "cancellation/<order id>" for its cancellation."""
    return order_id if aggregate_type == events.SAGA else f"{aggregate_type}/{order_id}"


class SagaSummary(models.Model):
    """An order's fulfilment or cancellation saga: its state, step log and compensations
    (GET /api/orders/{id}/saga/)."""

    State = models.TextChoices("State", [(state.upper(), state) for state in Saga.STATES])
    Kind = models.TextChoices("Kind", [(kind.upper(), kind) for kind in SAGA_CLASSES])

    saga_id = models.CharField(max_length=64, primary_key=True)
    order_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FULFILMENT)
    state = models.CharField(max_length=24, choices=State.choices)
    definition_version = models.PositiveSmallIntegerField()
    current_step = models.CharField(max_length=64, blank=True, default="")
    # Each step and compensation as the aggregate's SagaLog keeps it (a SagaLogEntry: status,
    # error, and attempt and tries for a numbered request), with its name and times.
    steps = models.JSONField(
        default=list, help_text="[{name, status, started_at, finished_at, error}]"
    )
    compensations = models.JSONField(
        default=list,
        help_text="[{name, status, error, attempt, tries, started_at, requested_at, finished_at}]",
    )
    # The reply waited for longest, and since when: what `expire_sagas` looks at.
    waiting_kind = models.CharField(max_length=16, blank=True, default="")
    waiting_for = models.CharField(max_length=64, blank=True, default="")
    waiting_attempt = models.PositiveIntegerField(default=0)
    waiting_since = models.DateTimeField(null=True, blank=True, db_index=True)
    version = models.PositiveIntegerField(help_text="Version of the saga's stream applied.")
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = SagaSummaryQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "saga_id"]
        verbose_name = "saga"
        constraints = [
            models.UniqueConstraint(fields=["order_id", "kind"], name="orders_one_saga_per_kind")
        ]

    def __str__(self) -> str:
        return f"saga {self.saga_id} ({self.state})"


class CatalogProduct(models.Model):
    """A product inventory has created: what an order may name (orders never ask inventory)."""

    product_id = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["product_id"]
        verbose_name = "catalogue product"

    def __str__(self) -> str:
        return self.product_id

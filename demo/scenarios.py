"""The demo's scenarios: place an order through `order_place`, let the saga finish, read back
what every service recorded, and check it against what the scenario promises.

Nothing here prints; `manage.py demo` turns the results into tables. Every check reads what the
services wrote (read models and the order's own events), so the demo doubles as a smoke test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from demo.seeding import LOW_STOCK_PRODUCT, demo_product
from eventstore.follower.subscriptions import catch_up_all
from eventstore.projections import get_projections
from eventstore.records import RecordedEvent
from eventstore.replay import verify
from eventstore.store import event_store
from inventory import events as inventory_events
from inventory.models import ProductStock
from inventory.services import stock_add
from notifications.models import SentNotification
from orders.models import OrderSummary
from orders.services import DEFAULT_PAYMENT_TOKEN, MAX_QUANTITY, OrderError, order_place
from payments.models import PaymentSummary

ACTOR = "demo:demo"
FINAL_STATUSES = (OrderSummary.Status.COMPLETED, OrderSummary.Status.CANCELLED)
# Catch-up passes before giving up on an order that is not final: each pass moves every saga at
# least one step, and the longest saga (payment failure) takes fewer than ten.
MAX_CATCH_UP_PASSES = 20


class DemoError(Exception):
    """The demo could not run a scenario at all (as opposed to a scenario ending unexpectedly)."""


@dataclass(frozen=True)
class Stock:
    """A product's stock counters at one moment."""

    available: int
    reserved: int
    sold: int
    received: int
    adjusted: int = 0  # staff's stock corrections, net (negative: units written off)

    @property
    def balanced(self) -> bool:
        """Whether available + reserved + sold == received + adjusted (the inventory
        invariant)."""
        return self.available + self.reserved + self.sold == self.received + self.adjusted


@dataclass(frozen=True)
class Scenario:
    """An order to place and everything it must end with.

    `short_of` adds a line for that product asking one unit more than is available.
    `stock_events` lists the event types each ordered product's stream must get, in order.
    """

    key: str
    title: str
    lines: tuple[tuple[str, int], ...]
    expected_status: str
    stock_events: tuple[str, ...]
    notifications: tuple[str, ...]
    payment_token: str = DEFAULT_PAYMENT_TOKEN
    short_of: str = ""
    expected_reason: str = ""
    # The payment's read-model status and reason; None: no payment may exist at all.
    payment_status: str | None = None
    payment_reason: str = ""


SCENARIOS = (
    Scenario(
        key="a",
        title="Happy path: a keyboard and two mice, paid with tok_visa_success",
        lines=(("keyboard", 1), ("mouse", 2)),
        expected_status=OrderSummary.Status.COMPLETED,
        stock_events=(inventory_events.STOCK_RESERVED, inventory_events.STOCK_SOLD),
        notifications=("order_confirmed", "order_completed"),
        payment_status=PaymentSummary.Status.PROCESSED,
    ),
    Scenario(
        key="b",
        title=f"Inventory shortage: a cable and more {LOW_STOCK_PRODUCT} than in stock",
        lines=(("usb-c-cable", 1),),
        short_of=LOW_STOCK_PRODUCT,
        expected_status=OrderSummary.Status.CANCELLED,
        expected_reason="insufficient_stock",
        # A reservation is all or nothing: not even the cable is held.
        stock_events=(),
        notifications=("order_cancelled",),
        payment_status=None,
    ),
    Scenario(
        key="c",
        title="Payment failure: a monitor, paid with tok_decline",
        lines=(("monitor", 1),),
        payment_token="tok_decline",
        expected_status=OrderSummary.Status.CANCELLED,
        expected_reason="card_declined",
        stock_events=(inventory_events.STOCK_RESERVED, inventory_events.STOCK_RELEASED),
        notifications=("order_cancelled",),
        payment_status=PaymentSummary.Status.FAILED,
        payment_reason="card_declined",
    ),
)


@dataclass
class ScenarioResult:
    """What one scenario did, as the services recorded it, and every unmet expectation."""

    scenario: Scenario
    order_id: str
    items: list[dict[str, Any]]
    order: OrderSummary
    timeline: list[RecordedEvent]
    stock_before: dict[str, Stock]
    stock_after: dict[str, Stock]
    payment: PaymentSummary | None
    notifications: list[SentNotification]
    topped_up: dict[str, int] = field(default_factory=dict)
    subscriber_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        """Whether the scenario ended exactly as it promises."""
        return not self.problems


def stock_of(product_ids: Sequence[str]) -> dict[str, Stock]:
    """Each product's stock counters from the inventory read model (current with the log)."""
    rows = ProductStock.objects.filter(pk__in=list(product_ids))
    found = {
        row.product_id: Stock(
            row.available_stock,
            row.reserved_stock,
            row.sold_stock,
            row.received_stock,
            row.adjusted_stock,
        )
        for row in rows
    }
    missing = [product_id for product_id in product_ids if product_id not in found]
    if missing:
        raise DemoError(f"No stock row for product(s) {', '.join(missing)}: run seed_demo")
    return {product_id: found[product_id] for product_id in product_ids}


def ensure_available(product_id: str, needed: int) -> int:
    """Make at least `needed` units of a demo product available, restocking it to its
    catalogue level (or `needed`) when it ran low; returns the units added (0: none)."""
    available = stock_of([product_id])[product_id].available
    if available >= needed:
        return 0
    quantity = max(demo_product(product_id).stock, needed) - available
    stock_add(product_id=product_id, quantity=quantity, metadata={"actor": ACTOR})
    return quantity


def settle() -> list[str]:
    """Catch every subscriber up until none has anything left to handle; returns the errors
    subscribers stopped on. A no-op when after-commit dispatch already ran the saga."""
    errors: list[str] = []
    for _ in range(MAX_CATCH_UP_PASSES):
        results = catch_up_all()
        errors = [f"{result.name}: {result.error}" for result in results if result.error]
        if not any(result.handled for result in results):
            break
    return errors


def run_scenario(scenario: Scenario, *, customer_id: str) -> ScenarioResult:
    """Place the scenario's order for the customer, wait until it is final and check it."""
    topped_up = {}
    for product_id, quantity in scenario.lines:
        added = ensure_available(product_id, quantity)
        if added:
            topped_up[product_id] = added
    lines = list(scenario.lines)
    if scenario.short_of:
        short = stock_of([scenario.short_of])[scenario.short_of].available + 1
        if short > MAX_QUANTITY:
            raise DemoError(
                f"{scenario.short_of} has {short - 1} units available; an order may ask at most "
                f"{MAX_QUANTITY}, so no shortage can be shown"
            )
        lines.append((scenario.short_of, short))
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    product_ids = [product_id for product_id, _ in lines]
    stock_before = stock_of(product_ids)
    try:
        placed = order_place(
            customer_id=customer_id,
            items=items,
            payment_token=scenario.payment_token,
            metadata={"actor": ACTOR},
        )
    except OrderError as error:
        raise DemoError(f"Scenario {scenario.key}: the order was refused: {error}") from error
    order_id = placed.order.id
    # The saga runs after the order's commit when EVENTSTORE_DISPATCH_ON_COMMIT is on; off (or
    # when a wake-up was lost), this is what a `process_events` worker would do.
    subscriber_errors = settle()
    result = ScenarioResult(
        scenario=scenario,
        order_id=order_id,
        items=items,
        order=OrderSummary.objects.get(pk=order_id),
        timeline=event_store.read_correlated(order_id),
        stock_before=stock_before,
        stock_after=stock_of(product_ids),
        payment=PaymentSummary.objects.filter(pk=order_id).first(),
        notifications=list(SentNotification.objects.filter(order_id=order_id).order_by("position")),
        topped_up=topped_up,
        subscriber_errors=subscriber_errors,
    )
    result.problems = _problems(result)
    return result


def _problems(result: ScenarioResult) -> list[str]:
    """Every way the result differs from what its scenario promises."""
    scenario, order = result.scenario, result.order
    problems = []
    if order.status not in FINAL_STATUSES:
        problems.append(f"the order is still {order.status}, not final")
        problems.extend(f"subscriber stopped: {error}" for error in result.subscriber_errors)
    if (order.status, order.cancel_reason) != (scenario.expected_status, scenario.expected_reason):
        got = _with_reason(order.status, order.cancel_reason)
        wanted = _with_reason(scenario.expected_status, scenario.expected_reason)
        problems.append(f"the order ended {got}, expected {wanted}")
    problems.extend(_payment_problems(result))
    for product_id in result.stock_after:
        moves = tuple(
            event.event_type
            for event in result.timeline
            if event.aggregate_type == inventory_events.PRODUCT and event.aggregate_id == product_id
        )
        if moves != scenario.stock_events:
            expected = list(scenario.stock_events)
            problems.append(f"{product_id}'s stock moved by {list(moves)}, expected {expected}")
        if not result.stock_after[product_id].balanced:
            problems.append(f"{product_id}: available + reserved + sold != received + adjusted")
    sent = tuple(notification.type for notification in result.notifications)
    if sorted(sent) != sorted(scenario.notifications):
        problems.append(
            f"notifications sent: {list(sent)}, expected {list(scenario.notifications)}"
        )
    return problems


def _with_reason(status: str, reason: str) -> str:
    return f"{status} ({reason})" if reason else status


def _payment_problems(result: ScenarioResult) -> list[str]:
    scenario, payment = result.scenario, result.payment
    if scenario.payment_status is None:
        return [] if payment is None else [f"a payment exists ({payment.status}), expected none"]
    if payment is None:
        return [f"no payment was recorded, expected a {scenario.payment_status} one"]
    problems = []
    if (payment.status, payment.reason) != (scenario.payment_status, scenario.payment_reason):
        got = _with_reason(payment.status, payment.reason)
        wanted = _with_reason(scenario.payment_status, scenario.payment_reason)
        problems.append(f"the payment is {got}, expected {wanted}")
    if payment.status == PaymentSummary.Status.PROCESSED:
        if result.order.total_amount is None or payment.amount != result.order.total_amount:
            problems.append(
                f"charged {payment.amount}, but the order's total is {result.order.total_amount}"
            )
        if not payment.transaction_id:
            problems.append("the processed payment has no transaction id")
    return problems


# --- replay ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelComparison:
    """One read model's rows before and after a rebuild, and how they differ."""

    label: str
    rows_before: int
    rows_after: int
    differences: list[str]

    @property
    def identical(self) -> bool:
        """Whether every row (every compared column) came back exactly as it was."""
        return not self.differences


@dataclass(frozen=True)
class ReplayResult:
    """A rebuild of every projection from the log, compared with the read models before it."""

    events: int
    seconds: float
    models: list[ModelComparison]

    @property
    def identical(self) -> bool:
        """Whether the rebuilt read models equal the ones they replaced."""
        return all(model.identical for model in self.models)

    @property
    def rows(self) -> int:
        """Read-model rows compared."""
        return sum(model.rows_before for model in self.models)


def replay_and_compare(*, difference_limit: int = 5) -> ReplayResult:
    """Empty every projection's read models, replay the whole log into them, and compare each
    row with the one it replaced. Appenders wait until it ends, so no new event can blur it."""
    projections = get_projections()
    read_models = [model for projection in projections for model in projection.models]
    with transaction.atomic():
        event_store.hold_appends()
        rows_before = {model: model.objects.count() for model in read_models}
        differences, rebuilt = verify(projections, keep=True)
        comparisons = []
        for model in read_models:
            found = [d.describe() for d in differences if d.model == model._meta.label]
            if len(found) > difference_limit:
                found = [*found[:difference_limit], f"... and {len(found) - difference_limit} more"]
            comparisons.append(
                ModelComparison(
                    label=model._meta.label,
                    rows_before=rows_before[model],
                    rows_after=model.objects.count(),
                    differences=found,
                )
            )
    return ReplayResult(events=rebuilt.events, seconds=rebuilt.seconds, models=comparisons)

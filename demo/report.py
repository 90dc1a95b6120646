"""Plain-text tables for the demo commands, each fitting a 100-column terminal.

Only presentation: every figure comes from the seeding and scenario results passed in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tabulate import tabulate

from demo.scenarios import ReplayResult, Stock
from demo.seeding import SeededAccount, SeededProduct
from eventstore.records import RecordedEvent
from inventory import events as inventory_events
from notifications import events as notifications_events
from orders import events as orders_events
from payments import events as payments_events
from payments.models import PaymentSummary

Summary = Callable[[Mapping[str, Any]], str]

WIDTH = 100
TABLE_FORMAT = "simple"
COLUMN_GAP = 2  # tabulate's "simple" format puts two spaces between columns
HEADER_PADDING = 2  # ... and makes each column two wider than its header (MIN_PADDING)


def table(rows: Iterable[Iterable[Any]], headers: Iterable[str], **options: Any) -> str:
    """A tabulate table in the demo's format."""
    return tabulate(
        list(rows), headers=list(headers), tablefmt=TABLE_FORMAT, disable_numparse=True, **options
    )


def heading(text: str, underline: str = "=") -> str:
    """`text` over a line of `underline` as long as it."""
    return f"{text}\n{underline * len(text)}"


def short_id(value: str) -> str:
    """A UUID's first 8 hex digits (like a short git hash); other ids up to 20 characters."""
    try:
        return uuid.UUID(value).hex[:8]
    except ValueError:
        return value if len(value) <= 20 else value[:17] + "..."


def stream_label(event: RecordedEvent) -> str:
    """`aggregate_type/aggregate_id` with the id shortened."""
    return f"{event.aggregate_type}/{short_id(event.aggregate_id)}"


def _items(lines: list[Mapping[str, Any]]) -> str:
    """ "keyboard x1 @89.00, mouse x2 @29.90" (prices when the lines have them)."""
    parts = []
    for line in lines:
        text = f"{line['product_id']} x{line['quantity']}"
        if line.get("unit_price"):
            text += f" @{line['unit_price']}"
        parts.append(text)
    return ", ".join(parts)


def _shortfalls(details: list[Mapping[str, Any]]) -> str:
    return ", ".join(
        f"{line['product_id']} {line['requested']} asked, {line['available']} available"
        for line in details
    )


def _moved(source: str, target: str) -> Summary:
    def summary(payload: Mapping[str, Any]) -> str:
        units = payload["quantity"]
        return f"{units} unit{'' if units == 1 else 's'}: {source} -> {target}"

    return summary


# What matters in each event's payload, most important first (a long summary wraps). The ids
# are left out: the stream column and the heading show them.
def _payment_method(payment_method: Mapping[str, Any]) -> str:
    """A payment token as the log describes it (the token itself is never in the log)."""
    last4 = payment_method.get("last4")
    return f"{payment_method['kind']} ...{last4}" if last4 else str(payment_method["kind"])


SUMMARIES: dict[str, Summary] = {
    orders_events.ORDER_CREATED: lambda p: (
        f"{_items(p['items'])} ({_payment_method(p['payment_method'])})"
    ),
    orders_events.ORDER_INVENTORY_RESERVED: lambda p: f"total {p['total_amount']}",
    orders_events.ORDER_INVENTORY_FAILED: lambda p: p["reason"],
    orders_events.ORDER_PAYMENT_PROCESSED: lambda p: f"{p['amount']}, {p['transaction_id']}",
    orders_events.ORDER_PAYMENT_FAILED: lambda p: p["reason"],
    orders_events.ORDER_INVENTORY_RELEASED: lambda p: "",
    orders_events.ORDER_CONFIRMED: lambda p: f"total {p['total_amount']}",
    orders_events.ORDER_COMPLETED: lambda p: f"total {p['total_amount']}",
    orders_events.ORDER_CANCELLED: lambda p: p["reason"],
    orders_events.SAGA_STARTED: lambda p: (
        f"definition v{p['definition_version']}, {len(p['steps'])} steps"
    ),
    orders_events.SAGA_STEP_SUCCEEDED: lambda p: p["step"],
    orders_events.SAGA_STEP_FAILED: lambda p: (
        f"{p['step']}: {p['reason']}; undo: {', '.join(p['compensations']) or 'nothing'}"
    ),
    orders_events.SAGA_COMPENSATION_SUCCEEDED: lambda p: p["compensation"],
    orders_events.SAGA_COMPENSATION_FAILED: lambda p: f"{p['compensation']}: {p['error']}",
    orders_events.SAGA_COMPLETED: lambda p: "",
    orders_events.SAGA_COMPENSATED: lambda p: "",
    orders_events.INVENTORY_RESERVATION_REQUESTED: lambda p: _items(p["items"]),
    orders_events.PAYMENT_REQUESTED: lambda p: (
        f"{p['amount']} with {_payment_method(p['payment_method'])}"
    ),
    orders_events.INVENTORY_RELEASE_REQUESTED: lambda p: f"attempt {p['attempt']}",
    orders_events.PAYMENT_REFUND_REQUESTED: lambda p: f"attempt {p['attempt']}",
    inventory_events.INVENTORY_RESERVED: lambda p: (
        f"total {p['total_amount']}: {_items(p['lines'])}"
    ),
    inventory_events.INVENTORY_RESERVATION_FAILED: lambda p: (
        f"{p['reason']}: {_shortfalls(p['details'])}"
    ),
    inventory_events.INVENTORY_RELEASED: lambda p: _items(p["lines"]),
    inventory_events.INVENTORY_COMMITTED: lambda p: _items(p["lines"]),
    inventory_events.STOCK_RESERVED: _moved("available", "reserved"),
    inventory_events.STOCK_RELEASED: _moved("reserved", "available"),
    inventory_events.STOCK_SOLD: _moved("reserved", "sold"),
    inventory_events.STOCK_ADDED: lambda p: f"{p['quantity']} units received",
    payments_events.PAYMENT_PROCESSED: lambda p: f"{p['amount']}, {p['transaction_id']}",
    payments_events.PAYMENT_FAILED: lambda p: f"{p['amount']} not charged: {p['reason']}",
    payments_events.PAYMENT_REFUNDED: lambda p: f"{p['amount']} refunded, {p['transaction_id']}",
    notifications_events.NOTIFICATION_SENT: lambda p: f"{p['type']} by {p['channel']}",
    notifications_events.NOTIFICATION_DELIVERED: lambda p: f"attempt {p['attempt']}",
    notifications_events.NOTIFICATION_DELIVERY_FAILED: lambda p: (
        f"attempt {p['attempt']}{', parked' if p['parked'] else ''}: {p['error']}"
    ),
}


def payload_summary(event: RecordedEvent) -> str:
    """A one-line summary of an event's payload; for a type the demo does not know, its
    scalar fields as key=value."""
    summary = SUMMARIES.get(event.event_type)
    if summary is not None:
        try:
            return summary(event.payload)
        except (KeyError, TypeError):
            pass  # a payload of another shape (a newer schema): fall back to its raw fields
    return ", ".join(
        f"{key}={value}"
        for key, value in event.payload.items()
        if isinstance(value, str | int | float) and value != event.aggregate_id
    )


def timeline_table(events: list[RecordedEvent], *, width: int = WIDTH) -> str:
    """The order's events in log order: position, stream, type and a payload summary wrapped
    to what is left of `width`."""
    headers = ("#", "stream", "event", "summary")
    rows = [
        (str(event.position), stream_label(event), event.event_type, payload_summary(event))
        for event in events
    ]
    # tabulate makes a column at least as wide as its header plus HEADER_PADDING.
    fixed = sum(
        max([len(headers[column]) + HEADER_PADDING] + [len(row[column]) for row in rows])
        for column in range(3)
    )
    room = max(width - fixed - COLUMN_GAP * 3, 20)
    return table(
        rows,
        headers,
        colalign=("right", "left", "left", "left"),
        maxcolwidths=[None, None, None, room],
    )


def stock_table(before: Mapping[str, Stock], after: Mapping[str, Stock]) -> str:
    """Each product's counters as `before -> after`."""
    counters = ("available", "reserved", "sold", "received")
    return table(
        [
            (
                product_id,
                *(
                    f"{getattr(before[product_id], name)} -> {getattr(after[product_id], name)}"
                    for name in counters
                ),
            )
            for product_id in before
        ],
        ("product", *counters),
    )


def payment_table(payment: PaymentSummary | None) -> str:
    """The order's payment: status, amount, and the transaction id or the decline reason."""
    if payment is None:
        return "No payment: nothing was charged."
    return table(
        [(payment.status, f"{payment.amount:.2f}", payment.transaction_id or payment.reason)],
        ("status", "amount", "transaction id / reason"),
    )


def replay_table(result: ReplayResult) -> str:
    """Each read model's rows before and after the rebuild, and whether they are identical."""
    return table(
        [
            (
                model.label,
                str(model.rows_before),
                str(model.rows_after),
                "yes" if model.identical else "no",
            )
            for model in result.models
        ],
        ("read model", "rows before", "rows after", "identical"),
        colalign=("left", "right", "right", "left"),
    )


def accounts_table(accounts: Iterable[SeededAccount]) -> str:
    """Username, role, customer id, password and API token of each demo account."""
    return table(
        [
            (
                account.username,
                account.role,
                "(staff: any)" if account.is_staff else account.customer_id,
                account.password or "(not the demo's)",
                account.token,
            )
            for account in accounts
        ],
        ("username", "role", "customer_id", "password", "API token"),
    )


def products_table(products: Iterable[SeededProduct]) -> str:
    """Id, name, price and stock counters of each catalogue product."""
    return table(
        [
            (
                product.product_id,
                product.name,
                f"{product.price:.2f}",
                str(product.available),
                str(product.reserved),
                str(product.sold),
            )
            for product in products
        ],
        ("product", "name", "price", "available", "reserved", "sold"),
        colalign=("left", "left", "right", "right", "right", "right"),
    )

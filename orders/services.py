"""Orders' command handlers: place an order, ask to cancel one, and wait for its outcome (the
fulfilment and cancellation sagas, in orders/saga.py, decide the rest and expire and retry
sagas).

An order is placed by appending its OrderCreated; the fulfilment saga (orders/saga.py) reacts
to it after commit. With an idempotency key the order id is derived from the caller and the
key, so a repeated request finds the order it created the first time instead of a second one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings

from eventstore.api import (
    Repository,
    admit,
    derived_event_id,
    event_store,
    require_no_transaction,
    retry_on_conflict,
    rows,
    unit_of_work,
    vault_erase,
    vault_put,
)
from orders import events
from orders.aggregates import (
    Cancellation,
    IllegalTransition,
    Order,
    OrderError,
    OrderNotFound,
    Saga,
)
from orders.models import CatalogProduct, OrderSummary

Metadata = Mapping[str, Any] | None

DEFAULT_PAYMENT_TOKEN = "tok_visa_success"
MAX_LINES = 100
MAX_QUANTITY = 1000
# order_wait_final looks again after this many seconds, doubling the pause up to the longest.
FIRST_LOOK_AFTER = 0.05
LONGEST_PAUSE = 0.2


# The only way to load and save this app's aggregates; the saga (orders/saga.py) uses them too.
orders: Repository[Order] = Repository(Order)
sagas: Repository[Saga] = Repository(Saga)
cancellations: Repository[Cancellation] = Repository(Cancellation)


class InvalidOrder(OrderError):
    """The order's lines break a rule (empty, too many, duplicate product, bad quantity)."""


class UnknownProducts(OrderError):
    """Some lines name products the catalogue does not have."""

    def __init__(self, product_ids: list[str]):
        self.product_ids = product_ids
        super().__init__(f"Unknown product(s): {', '.join(product_ids)}")


class IdempotencyKeyReused(OrderError):
    """The idempotency key placed a different order before."""


class OrderNotCancellable(OrderError):
    """The order's status allows no cancellation (already cancelled or being cancelled, or
    failing and about to be); `status` is the order's current one."""

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status
        # What the API's answer adds to `detail` (httpapi.errors.ErrorAnswer).
        self.answer_fields = {"status": status}


@dataclass(frozen=True)
class CancelledOrder:
    """The order a cancellation request refers to, and whether this call recorded it (False:
    an idempotent repeat)."""

    order: Order
    recorded: bool


@dataclass(frozen=True)
class PlacedOrder:
    """The order a placement refers to, and whether this call created it."""

    order: Order
    created: bool


def order_id_for_key(*, scope: str, idempotency_key: str) -> str:
    """The order id an idempotency key stands for, per caller (`scope`)."""
    return str(derived_event_id(events.ORDER, scope, idempotency_key))


def _checked_items(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    lines = [
        {"product_id": str(item["product_id"]), "quantity": item["quantity"]} for item in items
    ]
    if not 1 <= len(lines) <= MAX_LINES:
        raise InvalidOrder(f"An order has 1 to {MAX_LINES} lines")
    seen = set()
    for line in lines:
        quantity = line["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise InvalidOrder(f"The quantity of {line['product_id']!r} must be an integer")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidOrder(
                f"The quantity of {line['product_id']!r} must be 1 to {MAX_QUANTITY}"
            )
        if line["product_id"] in seen:
            raise InvalidOrder(f"Product {line['product_id']!r} appears on two lines")
        seen.add(line["product_id"])
    known = rows.keys(CatalogProduct, seen)
    unknown = [line["product_id"] for line in lines if line["product_id"] not in known]
    if unknown:
        raise UnknownProducts(unknown)
    return lines


@retry_on_conflict
def order_place(
    *,
    customer_id: str,
    items: Iterable[Mapping[str, Any]],
    payment_token: str = DEFAULT_PAYMENT_TOKEN,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    metadata: Metadata = None,
) -> PlacedOrder:
    """Place an order for products of the catalogue; its saga starts once this commits.

    Raises InvalidOrder or UnknownProducts, or Overloaded (eventstore.follower.admission), writing
    nothing. With an idempotency key, a repeat
    of the same request returns the order placed first (created=False), and a different
    request under the same key raises IdempotencyKeyReused.

    The payment token never enters the log: it is put in the vault in the placement's own
    transaction, for PAYMENTS_TOKEN_RETENTION_HOURS at most, and OrderCreated carries its
    reference and description (`events.payment_method_of`).
    """
    lines = _checked_items(items)
    admit()  # Overloaded, before anything is written, while accepted work waits too long
    key = idempotency_key or ""
    if key:
        order_id = order_id_for_key(scope=idempotency_scope, idempotency_key=key)
    else:
        order_id = str(uuid.uuid4())
    payment_method = events.payment_method_of(payment_token)
    asked = (customer_id, lines, payment_method["fingerprint"])
    with unit_of_work():
        # Only a key can name an order placed before; a fresh id cannot have a stream yet.
        order = orders.load_or_new(order_id) if key else orders.new(order_id)
        if order.exists:
            placed = {
                "customer_id": order.customer_id,
                "items": order.items,
                "payment_method": order.payment_method,
            }
            _check_same_request(placed, asked, key, order_id)
            return PlacedOrder(order, created=False)
        token_ref = vault_put(
            kind=events.PAYMENT_TOKEN_SECRET,
            secret=payment_token,
            retention=timedelta(hours=float(settings.PAYMENTS_TOKEN_RETENTION_HOURS)),
        )
        order.create(
            customer_id=customer_id,
            items=lines,
            payment_method=payment_method,
            payment_token_ref=token_ref,
            idempotency_key=key,
            event_id=derived_event_id(events.ORDER, order_id, "created") if key else None,
        )
        [created] = orders.save(order, metadata={**(metadata or {}), "correlation_id": order_id})
        if created.payload["payment_token_ref"] != token_ref:
            # A concurrent request with the same key stored its OrderCreated first (the store
            # returned that one instead of writing ours): ours is not kept, nor its token.
            vault_erase(token_ref)
            _check_same_request(created.payload, asked, key, order_id)
    return PlacedOrder(order, created=True)


def _check_same_request(placed: Mapping[str, Any], asked: tuple, key: str, order_id: str) -> None:
    """IdempotencyKeyReused unless the order placed under the key is the one `asked` for (the
    same token is told by its fingerprint: the log does not keep the token)."""
    items = [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in placed["items"]]
    fingerprint = placed["payment_method"]["fingerprint"]
    if (placed["customer_id"], items, fingerprint) != asked:
        raise IdempotencyKeyReused(
            f"Idempotency key {key!r} was used for a different order ({order_id})"
        )


@retry_on_conflict
def order_cancel(
    *,
    order_id: str,
    reason: str = "",
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    metadata: Metadata = None,
) -> CancelledOrder:
    """Ask to cancel an order (who may is the caller's business: the API lets a customer
    cancel their own). One in fulfilment stops at its saga's next step and compensates; a
    completed one is refunded and its stock returned by the cancellation saga, which starts
    once this commits.

    Raises OrderNotFound, and OrderNotCancellable from any status Order.CANCELLABLE does not
    name (or once a cancellation was asked for), writing nothing. With an idempotency key, a
    repeat returns the order as it stands (recorded=False) instead of OrderNotCancellable, and
    the same key with another reason raises IdempotencyKeyReused.
    """
    event_id = None
    if idempotency_key:
        event_id = derived_event_id(
            events.ORDER, order_id, "cancel", idempotency_scope, idempotency_key
        )
    with unit_of_work():
        order = orders.load(order_id, missing=OrderNotFound)
        earlier = event_store.get(event_id) if event_id is not None else None
        if earlier is not None:
            if earlier.payload["reason"] != reason:
                raise IdempotencyKeyReused(
                    f"Idempotency key {idempotency_key!r} cancelled order {order_id} "
                    "with another reason"
                )
            return CancelledOrder(order, recorded=False)
        try:
            order.request_cancellation(
                reason=reason,
                requested_by=str((metadata or {}).get("actor", "")),
                event_id=event_id,
            )
        except IllegalTransition:
            raise OrderNotCancellable(
                f"Order {order_id!r} is {order.status}: it cannot be cancelled", status=order.status
            ) from None
        orders.save(order, metadata={**(metadata or {}), "correlation_id": order_id})
    return CancelledOrder(order, recorded=True)


def order_wait_final(*, order_id: str, timeout: float) -> OrderSummary:
    """The order as its read model stands once it is final, or once `timeout` seconds have run
    out (at once when 0), whichever comes first. Each check is a query of its own, so the commits
    of the processes running the saga show; inside a transaction it raises TransactionOpen, as
    waiting would hold that transaction (and its locks) open."""
    require_no_transaction("Waiting for an order to be final")
    deadline = time.monotonic() + timeout
    pause = FIRST_LOOK_AFTER
    while True:
        order = OrderSummary.objects.get(pk=order_id)
        left = deadline - time.monotonic()
        if order.is_final or left <= 0:
            return order
        time.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)

"""Inventory's command handlers: load -> decide -> append, retried when a stream moved on.

The only place that appends inventory events. Every function is safe to call again with the
same arguments: a repeated reservation returns the first decision, a repeated release or
commit changes nothing, a repeated restock or stock correction with the same idempotency key
adds nothing, and setting a price, name or status a product already has records nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from eventstore.api import (
    Repository,
    derived_event_id,
    event_store,
    load_together,
    retry_on_conflict,
    unit_of_work,
)
from inventory import events
from inventory.aggregates import (
    InventoryError,
    Product,
    ProductNotFound,
    Reservation,
    ReservationNotFound,
    ReservationStateError,
)

products: Repository[Product] = Repository(Product)
reservations: Repository[Reservation] = Repository(Reservation)

Metadata = Mapping[str, Any] | None


class IdempotencyKeyReused(InventoryError):
    """The idempotency key was used before for a different request."""


@retry_on_conflict
def product_create(
    *,
    product_id: str,
    name: str,
    price: Decimal,
    initial_stock: int = 0,
    metadata: Metadata = None,
) -> Product:
    """Create a product with its initial stock; ProductAlreadyExists when the id is taken."""
    with unit_of_work():
        product = products.load_or_new(product_id)
        product.create(name=name, price=price, initial_stock=initial_stock)
        products.save(product, metadata=metadata)
    return product


@retry_on_conflict
def product_update(
    *,
    product_id: str,
    price: Decimal | None = None,
    name: str | None = None,
    reason: str = "",
    metadata: Metadata = None,
) -> Product:
    """Change a product's price and/or name, for `reason`, in one append; a value the product
    has already records nothing. Reservations made before keep their price."""
    with unit_of_work():
        product = products.load(product_id, missing=ProductNotFound)
        if price is not None:
            product.change_price(price=price, reason=reason)
        if name is not None:
            product.rename(name=name, reason=reason)
        products.save(product, metadata=metadata)
    return product


@retry_on_conflict
def product_discontinue(*, product_id: str, reason: str = "", metadata: Metadata = None) -> Product:
    """Withdraw a product from sale: new reservations are refused, its stock and the
    reservations already made stay; discontinuing it again records nothing."""
    with unit_of_work():
        product = products.load(product_id, missing=ProductNotFound)
        product.discontinue(reason=reason)
        products.save(product, metadata=metadata)
    return product


@retry_on_conflict
def product_restore(*, product_id: str, reason: str = "", metadata: Metadata = None) -> Product:
    """Put a discontinued product back on sale; restoring one on sale records nothing."""
    with unit_of_work():
        product = products.load(product_id, missing=ProductNotFound)
        product.reinstate(reason=reason)
        products.save(product, metadata=metadata)
    return product


@retry_on_conflict
def stock_add(
    *,
    product_id: str,
    quantity: int,
    idempotency_key: str | None = None,
    metadata: Metadata = None,
) -> Product:
    """Add received units to a product. With an idempotency key, a repeat adds nothing, and
    the same key with another quantity raises IdempotencyKeyReused."""
    event_id = None
    if idempotency_key:
        event_id = derived_event_id(events.PRODUCT, product_id, "restock", idempotency_key)
    with unit_of_work():
        if event_id is not None:
            earlier = event_store.get(event_id)
            if earlier is not None:
                if earlier.payload["quantity"] != quantity:
                    raise IdempotencyKeyReused(
                        f"Idempotency key {idempotency_key!r} was used to add "
                        f"{earlier.payload['quantity']} units, not {quantity}"
                    )
                return products.load(product_id, missing=ProductNotFound)
        product = products.load(product_id, missing=ProductNotFound)
        product.add_stock(
            quantity=quantity, idempotency_key=idempotency_key or "", event_id=event_id
        )
        products.save(product, metadata=metadata)
    return product


@retry_on_conflict
def stock_adjust(
    *,
    product_id: str,
    quantity: int,
    reason: str,
    note: str = "",
    idempotency_key: str | None = None,
    metadata: Metadata = None,
) -> Product:
    """Correct a product's available units by `quantity` (signed) for `reason` (damage, loss,
    a recount): never below zero (AdjustmentPastZero), never touching reserved units. With an
    idempotency key, a repeat changes nothing, and the same key for another correction raises
    IdempotencyKeyReused."""
    event_id = None
    if idempotency_key:
        event_id = derived_event_id(events.PRODUCT, product_id, "adjust", idempotency_key)
    with unit_of_work():
        if event_id is not None:
            earlier = event_store.get(event_id)
            if earlier is not None:
                asked = {"quantity": quantity, "reason": reason, "note": note}
                if {key: earlier.payload[key] for key in asked} != asked:
                    raise IdempotencyKeyReused(
                        f"Idempotency key {idempotency_key!r} was used to adjust by "
                        f"{earlier.payload['quantity']} ({earlier.payload['reason']})"
                    )
                return products.load(product_id, missing=ProductNotFound)
        product = products.load(product_id, missing=ProductNotFound)
        product.adjust_stock(
            quantity=quantity,
            reason=reason,
            note=note,
            idempotency_key=idempotency_key or "",
            event_id=event_id,
        )
        products.save(product, metadata=metadata)
    return product


def _merged(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Quantity per product, summed over repeated lines, in product id order."""
    wanted: dict[str, int] = {}
    for item in items:
        quantity = item["quantity"]
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
            raise InventoryError(f"quantity of {item['product_id']!r} must be a positive integer")
        wanted[str(item["product_id"])] = wanted.get(str(item["product_id"]), 0) + quantity
    if not wanted:
        raise InventoryError("a reservation needs at least one line")
    return dict(sorted(wanted.items()))


@retry_on_conflict
def stock_reserve(
    *, reservation_id: str, items: Iterable[Mapping[str, Any]], metadata: Metadata = None
) -> Reservation:
    """Reserve every line or none, at each product's current price. A discontinued product
    is refused as a short line with nothing available.

    The reservation and every product it takes stock from are appended in one transaction, each
    at the version it was loaded at. A reservation id seen before returns its first decision.
    """
    wanted = _merged(items)
    with unit_of_work():
        reservation, *stock = load_together(
            (reservations, reservation_id), *((products, product_id) for product_id in wanted)
        )
        if reservation.status != Reservation.NEW:
            return reservation
        loaded = dict(zip(wanted, stock, strict=True))
        unknown = [product_id for product_id, product in loaded.items() if not product.exists]
        short = [
            product_id
            for product_id, product in loaded.items()
            if product.exists and wanted[product_id] > product.available_for_sale
        ]
        if unknown or short:
            reason = "unknown_product" if unknown else "insufficient_stock"
            reservation.failed(
                reason=reason,
                details=[
                    {
                        "product_id": product_id,
                        "requested": wanted[product_id],
                        "available": loaded[product_id].available_for_sale,
                    }
                    for product_id in (unknown or short)
                ],
            )
            reservations.save(reservation, metadata=metadata)
            return reservation
        lines = []
        for product_id, product in loaded.items():
            product.reserve(reservation_id=reservation_id, quantity=wanted[product_id])
            lines.append(
                {
                    "product_id": product_id,
                    "quantity": wanted[product_id],
                    "unit_price": product.price,
                }
            )
        reservation.reserved(lines=lines)
        reservations.save(reservation, *loaded.values(), metadata=metadata)
    return reservation


def _settle(reservation: Reservation, *, sold: bool, metadata: Metadata) -> None:
    """Sell (or release) every unit the reservation holds: each product's units and the
    reservation's outcome are appended together, at the versions they were loaded at."""
    held = load_together(*((products, line["product_id"]) for line in reservation.held_lines))
    for product in held:
        if not product.exists:
            raise ProductNotFound(f"Product {product.id!r} does not exist")
    for product, line in zip(held, reservation.held_lines, strict=True):
        move = product.sell if sold else product.release
        move(reservation_id=reservation.id, quantity=line["quantity"])
    if sold:
        reservation.committed()
    else:
        reservation.released()
    reservations.save(reservation, *held, metadata=metadata)


@retry_on_conflict
def stock_release(
    *, reservation_id: str, missing_ok: bool = False, metadata: Metadata = None
) -> Reservation:
    """Give a reservation's units back to available stock; a repeat changes nothing.

    An unknown reservation raises ReservationNotFound, unless `missing_ok`: then it is recorded
    as released with nothing held, so a reservation requested later for it is refused.
    A committed reservation raises ReservationStateError (sold units are not released).
    """
    with unit_of_work():
        reservation = reservations.load_or_new(reservation_id)
        if reservation.status == Reservation.NEW and not missing_ok:
            raise ReservationNotFound(f"Reservation {reservation_id!r} does not exist")
        if reservation.status in (Reservation.RELEASED, Reservation.FAILED):
            return reservation
        if reservation.status == Reservation.COMMITTED:
            raise ReservationStateError(
                f"Reservation {reservation_id!r} is committed: sold units are not released"
            )
        _settle(reservation, sold=False, metadata=metadata)
    return reservation


@retry_on_conflict
def stock_return(*, reservation_id: str, metadata: Metadata = None) -> Reservation:
    """Put a committed reservation's sold units back to available stock (its order was
    cancelled); a repeat changes nothing.

    Raises ReservationNotFound for an unknown id and ReservationStateError for a reservation
    that was never committed.
    """
    with unit_of_work():
        reservation = reservations.load(reservation_id, missing=ReservationNotFound)
        if reservation.status == Reservation.RETURNED:
            return reservation
        if reservation.status != Reservation.COMMITTED:
            raise ReservationStateError(
                f"Reservation {reservation_id!r} is {reservation.status or 'new'}; only a "
                "committed one can be returned"
            )
        held = load_together(*((products, line["product_id"]) for line in reservation.held_lines))
        for product, line in zip(held, reservation.held_lines, strict=True):
            product.return_sold(reservation_id=reservation_id, quantity=line["quantity"])
        reservation.returned()
        reservations.save(reservation, *held, metadata=metadata)
    return reservation


@retry_on_conflict
def stock_commit(*, reservation_id: str, metadata: Metadata = None) -> Reservation:
    """Turn a reservation's units into sold ones; a repeat changes nothing.

    Raises ReservationNotFound for an unknown id and ReservationStateError for a reservation
    that failed or was released.
    """
    with unit_of_work():
        reservation = reservations.load(reservation_id, missing=ReservationNotFound)
        if reservation.status == Reservation.COMMITTED:
            return reservation
        if reservation.status != Reservation.RESERVED:
            raise ReservationStateError(
                f"Reservation {reservation_id!r} is {reservation.status}; only a reserved one "
                "can be committed"
            )
        _settle(reservation, sold=True, metadata=metadata)
    return reservation

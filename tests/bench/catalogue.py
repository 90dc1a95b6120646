"""Products for the order workloads: created through inventory's own command handler, and
checked against their events and the orders once a workload is done."""

from __future__ import annotations

from decimal import Decimal


def create_products(prefix: str, count: int, stock: int) -> list[str]:
    """Create `count` products `<prefix>-0`, `<prefix>-1`, ... of `stock` units; their ids."""
    from inventory.services import product_create

    product_ids = [f"{prefix}-{n}" for n in range(count)]
    for n, product_id in enumerate(product_ids):
        product_create(
            product_id=product_id,
            name=f"Benchmark product {product_id}",
            price=Decimal("9.99") + n,
            initial_stock=stock,
        )
    return product_ids


def check_stock(product_ids: list[str], stock: int, notes: list[str]) -> tuple[int, dict[str, int]]:
    """Check each product (`stock` units received) against its events and the completed orders:
    no negative count; available + reserved + sold equals the units received plus staff's stock
    corrections (adjusted), in the read model and in the aggregate replayed from its events; the
    two agree; the units sold equal the units
    of the completed orders (no oversell). Returns (products failing a check, orders by status);
    each failure, and any order neither completed nor cancelled, is described in `notes`.

    Call it with every subscriber caught up, and with nothing else writing."""
    from inventory.models import ProductStock
    from inventory.services import products
    from orders.models import OrderSummary

    by_status: dict[str, int] = {}
    sold_to: dict[str, int] = dict.fromkeys(product_ids, 0)
    for status, items in OrderSummary.objects.values_list("status", "items"):
        by_status[status] = by_status.get(status, 0) + 1
        if status == "completed":
            for item in items:
                sold_to[item["product_id"]] = sold_to.get(item["product_id"], 0) + item["quantity"]
    failing = 0
    for product_id in product_ids:
        row = ProductStock.objects.get(pk=product_id)
        product = products.load(product_id, use_snapshot=False)
        read = (
            row.available_stock,
            row.reserved_stock,
            row.sold_stock,
            row.received_stock,
            row.adjusted_stock,
        )
        replayed = (
            product.available,
            product.reserved,
            product.sold,
            product.received,
            product.adjusted,
        )
        problems = []
        if min(*read[:4], *replayed[:4]) < 0:  # adjusted is signed: units removed are negative
            problems.append("a negative count")
        for name, (available, reserved, sold, received, adjusted) in (
            ("read model", read),
            ("aggregate", replayed),
        ):
            if available + reserved + sold != received + adjusted:
                problems.append(
                    f"{name}: {available} + {reserved} + {sold} != {received} + {adjusted}"
                )
        if read != replayed:
            problems.append(f"read model {read} != aggregate {replayed}")
        if product.received != stock:
            problems.append(f"received {product.received}, not the {stock} seeded")
        if product.sold != sold_to[product_id]:
            problems.append(f"sold {product.sold}, completed orders hold {sold_to[product_id]}")
        if problems:
            failing += 1
            notes.append(f"{product_id}: " + "; ".join(problems))
    unsettled = sum(
        n for status, n in by_status.items() if status not in {"completed", "cancelled"}
    )
    if unsettled:
        notes.append(f"{unsettled} orders not completed or cancelled after catching up")
    return failing, by_status

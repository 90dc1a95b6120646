"""Products for the order workloads, created through inventory's own command handler."""

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

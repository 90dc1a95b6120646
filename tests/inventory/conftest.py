"""Fixtures for the inventory suites: products made through the services, stock read back."""

from decimal import Decimal

import pytest

from inventory.services import product_create, products


@pytest.fixture
def make_product(db):
    """A function creating a product through `product_create` (events are the source of truth)."""

    def make(product_id="p1", *, stock=10, price="12.50", name=None, metadata=None):
        return product_create(
            product_id=product_id,
            name=name or f"Product {product_id}",
            price=Decimal(price),
            initial_stock=stock,
            metadata=metadata,
        )

    return make


@pytest.fixture
def stock_of(db):
    """A function giving a product's (available, reserved, sold, received), rebuilt from events."""

    def stock(product_id):
        product = products.load(product_id, use_snapshot=False)
        return (product.available, product.reserved, product.sold, product.received)

    return stock

"""Inventory's series: the units of staff's stock corrections, counted once they commit."""

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from inventory.aggregates import AdjustmentPastZero
from inventory.services import stock_adjust

pytestmark = pytest.mark.django_db


def units(reason, direction):
    labels = {"reason": reason, "direction": direction}
    return REGISTRY.get_sample_value("inventory_stock_adjusted_units_total", labels) or 0.0


def test_corrections_count_their_units_by_reason_and_direction(
    make_product, django_capture_on_commit_callbacks
):
    make_product("p1", stock=10)
    damaged, found = units("damaged", "removed"), units("found", "added")

    with django_capture_on_commit_callbacks(execute=True):
        stock_adjust(product_id="p1", quantity=-3, reason="damaged")
    with django_capture_on_commit_callbacks(execute=True):
        stock_adjust(product_id="p1", quantity=2, reason="found")

    assert (units("damaged", "removed"), units("found", "added")) == (damaged + 3, found + 2)


def test_a_refused_or_rolled_back_correction_counts_nothing(
    make_product, django_capture_on_commit_callbacks
):
    make_product("p1", stock=1)
    lost = units("lost", "removed")

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(AdjustmentPastZero):
            stock_adjust(product_id="p1", quantity=-2, reason="lost")
        with transaction.atomic():
            stock_adjust(product_id="p1", quantity=-1, reason="lost")
            transaction.set_rollback(True)

    assert units("lost", "removed") == lost

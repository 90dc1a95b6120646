"""Single-row writes for projections: rows read back through the ORM as if it had written them."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from eventstore import rows
from inventory.models import ProductStock, ReservationSummary
from orders.models import SagaSummary

AT = datetime(2026, 11, 25, 12, 30, 15, 123456, tzinfo=UTC)
LATER = datetime(2026, 11, 25, 12, 31, tzinfo=UTC)


@pytest.mark.django_db
def test_an_inserted_row_reads_back_with_its_json_decimals_datetimes_and_defaults():
    lines = [{"product_id": "p1", "quantity": 2, "unit_price": "9.99"}]

    rows.insert(
        ReservationSummary,
        reservation_id="r1",
        status=ReservationSummary.Status.RESERVED,
        lines=lines,
        total_amount=Decimal("19.98"),
        created_at=AT,
        updated_at=AT,
    )

    row = ReservationSummary.objects.get(pk="r1")
    assert (row.status, row.lines, row.total_amount) == ("reserved", lines, Decimal("19.98"))
    assert (row.created_at, row.updated_at) == (AT, AT)
    assert (row.reason, row.details) == ("", [])  # the fields' defaults


@pytest.mark.django_db
def test_an_update_sets_fields_adds_to_counters_and_says_how_many_rows_changed():
    rows.insert(
        ProductStock,
        product_id="p1",
        name="Lamp",
        price=Decimal("10.00"),
        available_stock=5,
        received_stock=5,
        version=1,
        created_at=AT,
        updated_at=AT,
    )

    changed = rows.update(
        ProductStock,
        "p1",
        add={"available_stock": -2, "reserved_stock": 2},
        version=2,
        updated_at=LATER,
    )
    missing = rows.update(ProductStock, "nope", version=9)

    stock = ProductStock.objects.get(pk="p1")
    assert (changed, missing) == (1, 0)
    assert (stock.available_stock, stock.reserved_stock, stock.version) == (3, 2, 2)
    assert (stock.updated_at, stock.created_at, stock.price) == (LATER, AT, Decimal("10.00"))


@pytest.mark.django_db
def test_instances_are_inserted_and_updated_field_by_field():
    saga = SagaSummary(
        saga_id="s1",
        order_id="o1",
        state="running",
        definition_version=1,
        steps=[{"name": "reserve_inventory", "status": "pending"}],
        compensations=[],
        version=1,
        started_at=AT,
        updated_at=AT,
    )
    rows.insert_instance(saga)
    saga.state = "completed"
    saga.steps[0]["status"] = "succeeded"
    saga.waiting_since = LATER
    saga.order_id = "not written"

    rows.update_instance(saga, ["state", "steps", "waiting_since"])

    stored = SagaSummary.objects.get(pk="s1")
    assert (stored.state, stored.steps[0]["status"]) == ("completed", "succeeded")
    assert (stored.waiting_since, stored.order_id) == (LATER, "o1")


@pytest.mark.django_db
def test_an_unknown_field_is_refused_and_a_duplicate_key_is_the_databases_error():
    with pytest.raises(TypeError, match="no field"):
        rows.insert(ProductStock, product_id="p1", colour="red")
    values = dict(product_id="p1", name="Lamp", price=Decimal(1), version=1)
    rows.insert(ProductStock, **values, created_at=AT, updated_at=AT)

    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert(ProductStock, **values, created_at=AT, updated_at=AT)

    assert ProductStock.objects.count() == 1


@pytest.mark.django_db
def test_rows_read_by_key_equal_what_the_orm_reads():
    for n in (1, 2):
        rows.insert(
            ReservationSummary,
            reservation_id=f"r{n}",
            status=ReservationSummary.Status.RESERVED,
            lines=[{"product_id": "p1", "quantity": n}],
            total_amount=Decimal("19.98") * n,
            created_at=AT,
            updated_at=LATER,
        )

    found = rows.in_bulk(ReservationSummary, ["r1", "r2", "missing"])

    assert set(found) == {"r1", "r2"}
    for key, row in found.items():
        orm = ReservationSummary.objects.get(pk=key)
        assert [getattr(row, f.attname) for f in ReservationSummary._meta.concrete_fields] == [
            getattr(orm, f.attname) for f in ReservationSummary._meta.concrete_fields
        ]
        assert not row._state.adding  # a loaded row: saving it updates
    assert found["r2"].total_amount == Decimal("39.96")
    assert rows.in_bulk(ReservationSummary, []) == {}


@pytest.mark.django_db
def test_a_row_batch_writes_each_row_once_with_every_change_of_the_batch(
    django_assert_num_queries,
):
    reserved = {
        "status": ReservationSummary.Status.RESERVED,
        "total_amount": Decimal("1.00"),
        "created_at": AT,
        "updated_at": AT,
    }
    rows.insert(ReservationSummary, reservation_id="stored", **reserved)
    batch = rows.RowBatch(ReservationSummary)

    batch.insert("new", {"reservation_id": "new", **reserved})
    batch.change("new", {"status": ReservationSummary.Status.RELEASED})
    batch.change("stored", {"status": ReservationSummary.Status.COMMITTED})
    batch.change("stored", {"updated_at": LATER})
    with django_assert_num_queries(2):
        batch.flush()

    statuses = dict(ReservationSummary.objects.values_list("reservation_id", "status"))
    assert statuses == {"new": "released", "stored": "committed"}
    assert ReservationSummary.objects.get(pk="stored").updated_at == LATER


@pytest.mark.django_db
def test_rows_a_batch_changes_alike_are_updated_in_one_statement(django_assert_num_queries):
    for product_id in ("p1", "p2", "p3"):
        rows.insert(
            ProductStock,
            product_id=product_id,
            name=product_id,
            price=Decimal("9.99"),
            available_stock=10,
            received_stock=10,
            version=1,
            created_at=AT,
            updated_at=AT,
        )
    batch = rows.RowBatch(ProductStock)
    batch.change("p1", {"version": 2, "updated_at": LATER}, add=reserved(3))
    batch.change("p2", {"version": 5, "updated_at": LATER}, add=reserved(1))
    batch.change("p2", {"version": 6}, add=reserved(2))

    with django_assert_num_queries(1):
        batch.flush()

    stock = {
        row.product_id: (row.version, row.available_stock, row.reserved_stock, row.updated_at)
        for row in ProductStock.objects.all()
    }
    assert stock == {"p1": (2, 7, 3, LATER), "p2": (6, 7, 3, LATER), "p3": (1, 10, 0, AT)}


def reserved(units):
    return {"available_stock": -units, "reserved_stock": units}

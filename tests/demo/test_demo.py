"""manage.py demo: three orders run to their expected end, then a replay of the whole log.

The saga runs in after-commit callbacks, so these tests commit for real (transaction=True).
"""

import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from demo.report import payload_summary, short_id, timeline_table
from demo.scenarios import DemoError, stock_of
from demo.seeding import LOW_STOCK_PRODUCT
from eventstore.projections import get_projections
from eventstore.records import RecordedEvent
from eventstore.replay import verify
from eventstore.store import event_store
from inventory.models import ProductStock
from inventory.services import stock_add
from orders.models import CatalogProduct, OrderSummary
from orders.services import order_place
from payments.models import PaymentSummary

ORDER_LINE = re.compile(r"^Order ([0-9a-f-]{36})$", re.MULTILINE)

real_commits = pytest.mark.django_db(transaction=True)


def run(*args, **options):
    """Run the demo; return what it wrote to stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("demo", *args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def run_failing(*args, **options):
    """Run a demo expected to fail; return its CommandError and what it wrote to stdout and
    stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("demo", *args, stdout=stdout, stderr=stderr, **options)
    return raised.value, stdout.getvalue(), stderr.getvalue()


def alice_id():
    return str(get_user_model().objects.get(username="alice").pk)


def assert_stock_balances():
    for row in ProductStock.objects.all():
        assert row.available_stock + row.reserved_stock + row.sold_stock == (
            row.received_stock + row.adjusted_stock
        )
        assert row.reserved_stock == 0, "no order is left holding stock"


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


@real_commits
def test_demo_runs_each_scenario_to_its_expected_end(debug):
    output, errors = run()

    assert "a. Happy path" in output
    assert "Status: completed, total 148.80 -- as expected" in output
    assert "Status: cancelled (reason: insufficient_stock) -- as expected" in output
    assert "Status: cancelled (reason: card_declined), total 349.00 -- as expected" in output
    assert "identical: yes" in output
    assert output.rstrip().endswith("All 4 scenarios ended as expected.")
    assert "NOT as expected" not in output and errors == ""


@real_commits
def test_demo_creates_the_orders_it_prints(debug):
    output, _ = run()

    happy, short, declined = ORDER_LINE.findall(output)
    orders = {order.order_id: order for order in OrderSummary.objects.all()}
    assert set(orders) == {happy, short, declined}
    assert {order.customer_id for order in orders.values()} == {alice_id()}
    assert (orders[happy].status, orders[happy].total_amount) == ("completed", Decimal("148.80"))
    assert orders[short].status == "cancelled"
    assert orders[short].cancel_reason == "insufficient_stock"
    assert orders[declined].status == "cancelled"
    assert orders[declined].cancel_reason == "card_declined"
    payments = {payment.payment_id: payment for payment in PaymentSummary.objects.all()}
    assert set(payments) == {happy, declined}, "the shortage charged nothing"
    assert payments[happy].status == "processed" and payments[happy].amount == Decimal("148.80")
    assert payments[happy].transaction_id in output
    assert (payments[declined].status, payments[declined].reason) == ("failed", "card_declined")
    # Each order's timeline is printed: its first event's position and the stream's short id.
    for order_id in (happy, short, declined):
        first = event_store.read_correlated(order_id)[0]
        assert re.search(rf"^ *{first.position}  order/{order_id[:8]} +OrderCreated", output, re.M)


@real_commits
def test_demo_leaves_every_product_balanced_and_the_read_models_true_to_the_log(debug):
    run()

    assert_stock_balances()
    sold = {row.product_id: row.sold_stock for row in ProductStock.objects.filter(sold_stock__gt=0)}
    assert sold == {"keyboard": 1, "mouse": 2}
    differences, _ = verify(get_projections())
    assert differences == []


@real_commits
def test_demo_prints_stock_and_payment_figures_and_fits_100_columns(debug):
    output, _ = run()

    assert re.search(r"^keyboard +25 -> 24 +0 -> 0 +0 -> 1 +25 -> 25$", output, re.M)
    assert re.search(rf"^{LOW_STOCK_PRODUCT} +3 -> 3 +0 -> 0 +0 -> 0 +3 -> 3$", output, re.M)
    assert re.search(r"^monitor +10 -> 10 +0 -> 0 +0 -> 0 +10 -> 10$", output, re.M)
    assert "No payment: nothing was charged." in output
    assert re.search(r"^failed +349\.00 +card_declined$", output, re.M)
    assert max(len(line) for line in output.splitlines()) <= 100


@real_commits
def test_demo_can_run_twice(debug):
    run()
    output, _ = run()

    assert len(ORDER_LINE.findall(output)) == 3
    assert OrderSummary.objects.count() == 6
    assert get_user_model().objects.count() == 3
    assert "All 4 scenarios ended as expected." in output
    assert_stock_balances()


@real_commits
def test_demo_restocks_a_product_that_ran_out(debug):
    call_command("seed_demo", stdout=io.StringIO())
    # Another customer buys every keyboard through the ordinary path.
    bob = str(get_user_model().objects.get(username="bob").pk)
    placed = order_place(customer_id=bob, items=[{"product_id": "keyboard", "quantity": 25}])
    assert OrderSummary.objects.get(pk=placed.order.id).status == "completed"
    assert stock_of(["keyboard"])["keyboard"].available == 0

    output, _ = run()

    assert "Restocked keyboard with 25 units so the order can run." in output
    keyboard = ProductStock.objects.get(pk="keyboard")
    assert (keyboard.available_stock, keyboard.sold_stock, keyboard.received_stock) == (24, 26, 50)
    assert "All 4 scenarios ended as expected." in output


@real_commits
def test_demo_finishes_orders_itself_when_subscribers_are_not_woken_on_commit(debug, settings):
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False

    output, _ = run(verbosity=2)

    assert "All 4 scenarios ended as expected." in output
    assert sorted(OrderSummary.objects.values_list("status", flat=True)) == [
        "cancelled",
        "cancelled",
        "completed",
    ]


@real_commits
def test_demo_fails_when_a_scenario_does_not_end_as_expected(debug, settings):
    settings.PAYMENTS_FAILURE_RATE = 1.0  # the gateway declines even the happy path's charge

    error, output, _ = run_failing()

    assert "Status: cancelled (reason: processing_error), total 148.80 -- NOT as expected" in output
    message = str(error)
    assert "a. the order ended cancelled (processing_error), expected completed" in message
    assert "a. the payment is failed (processing_error), expected processed" in message
    assert "b." not in message and "c." not in message, "the other scenarios still pass"


@real_commits
def test_demo_fails_when_the_replay_does_not_reproduce_the_read_models(debug):
    call_command("seed_demo", stdout=io.StringIO())
    # Read models edited by hand: the log does not say so, so a rebuild cannot reproduce them.
    ProductStock.objects.filter(pk="laptop-stand").update(name="Edited by hand")
    CatalogProduct.objects.filter(pk="laptop-stand").delete()
    CatalogProduct.objects.create(product_id="ghost", name="Ghost", created_at=timezone.now())

    error, output, errors = run_failing()

    assert re.search(r"^inventory\.ProductStock +6 +6 +no$", output, re.M)
    assert re.search(r"^orders\.CatalogProduct +6 +6 +no$", output, re.M)
    assert "identical: no" in output
    assert "d. the rebuilt read models differ" in str(error)
    assert (
        "inventory.ProductStock [product_id='laptop-stand']: "
        "name: live 'Edited by hand' != rebuilt 'Aluminium laptop stand'"
    ) in errors
    assert (
        "orders.CatalogProduct [product_id='laptop-stand']: missing from the live read model"
    ) in errors
    assert "orders.CatalogProduct [product_id='ghost']: in the live read model but not" in errors
    # The rebuilt read models are kept: they are what the log says.
    assert ProductStock.objects.get(pk="laptop-stand").name == "Aluminium laptop stand"
    assert not CatalogProduct.objects.filter(pk="ghost").exists()


@real_commits
def test_demo_stops_when_an_order_is_refused(debug):
    call_command("seed_demo", stdout=io.StringIO())
    # Orders check products against their own catalogue read model: without monitor in it,
    # scenario c's order is refused.
    CatalogProduct.objects.filter(pk="monitor").delete()

    error, output, _ = run_failing()

    assert "Scenario c: the order was refused: Unknown product(s): monitor" in str(error)
    assert "b. Inventory shortage" in output, "the scenarios before it ran"


@real_commits
def test_demo_refuses_when_no_shortage_can_be_shown(debug):
    call_command("seed_demo", stdout=io.StringIO())
    stock_add(product_id=LOW_STOCK_PRODUCT, quantity=1000)

    error, _, _ = run_failing()

    assert "an order may ask at most 1000" in str(error)


@pytest.mark.django_db
def test_demo_refuses_to_run_without_debug(settings):
    settings.DEBUG = False

    error, _, _ = run_failing()

    assert "--force" in str(error)
    assert not get_user_model().objects.exists()


@real_commits
def test_force_runs_the_demo_without_debug_and_verbosity_0_prints_only_outcomes(settings):
    settings.DEBUG = False

    output, _ = run("--force", verbosity=0)

    assert "All 4 scenarios ended as expected." in output
    assert "Event timeline" not in output and "rows before" not in output


@pytest.mark.django_db
def test_stock_of_an_unknown_product_is_a_demo_error():
    with pytest.raises(DemoError, match="no-such-product"):
        stock_of(["no-such-product"])


def recorded(event_type, payload, aggregate_id="x"):
    return RecordedEvent(
        position=7,
        event_id=None,
        aggregate_type="thing",
        aggregate_id=aggregate_id,
        version=1,
        event_type=event_type,
        schema_version=1,
        payload=payload,
        metadata={},
        recorded_at=None,
    )


def test_an_unknown_event_type_is_summarised_by_its_scalar_fields():
    event = recorded("ThingHappened", {"thing_id": "x", "colour": "red", "size": 3, "tags": []})

    assert payload_summary(event) == "colour=red, size=3"


def test_a_known_event_type_of_another_shape_falls_back_to_its_fields():
    assert payload_summary(recorded("OrderCancelled", {"why": "gone"})) == "why=gone"


def test_a_long_summary_wraps_so_the_timeline_fits_its_width():
    event = recorded("ThingHappened", {"note": "word " * 30}, aggregate_id="a" * 40)

    lines = timeline_table([event], width=80).splitlines()

    assert max(len(line) for line in lines) <= 80
    assert "thing/" + "a" * 17 + "..." in lines[2]
    assert short_id("5f0c8a52-3a5e-4b8e-9d7c-2f1e6b5a9c30") == "5f0c8a52"

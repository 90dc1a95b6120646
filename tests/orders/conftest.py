"""Fixtures for the orders suites: products and orders made through the services, the saga's
and the order's streams read back, and the other services' subscribers switched off at will."""

from contextlib import contextmanager, nullcontext
from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from eventstore.follower.subscriptions import (
    catch_up_all,
    get_subscribers,
    register_subscriber,
    unregister_subscriber,
)
from eventstore.store import event_store
from inventory.services import product_create, products
from orders import events
from orders.aggregates import Saga
from orders.models import OrderSummary
from orders.saga import sagas_expire
from orders.services import order_place
from tests.orders.sagas import saga_of


@pytest.fixture
def make_product(db):
    """A function creating a product through inventory's `product_create` (which also fills
    orders' catalogue)."""

    def make(product_id="p1", *, stock=10, price="12.50", name=None):
        return product_create(
            product_id=product_id,
            name=name or f"Product {product_id}",
            price=Decimal(price),
            initial_stock=stock,
        )

    return make


@pytest.fixture
def stock_of(db):
    """A function giving a product's (available, reserved, sold), rebuilt from its events."""

    def stock(product_id="p1"):
        product = products.load(product_id, use_snapshot=False)
        return (product.available, product.reserved, product.sold)

    return stock


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks):
    """A context manager running the after-commit subscribers (the saga, inventory, payments)
    of everything committed inside it, as a real commit would."""

    @contextmanager
    def running():
        with django_capture_on_commit_callbacks(execute=True):
            yield

    return running


@pytest.fixture
def place(db, run_after_commit):
    """A function placing an order through `order_place` and (unless `run_saga=False`) running
    its saga as far as the other services answer; returns the order id."""

    def place_order(
        items=(("p1", 2),), *, customer_id="c-1", token="tok_visa_success", run_saga=True
    ):
        lines = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in items]
        with run_after_commit() if run_saga else nullcontext():
            placed = order_place(customer_id=customer_id, items=lines, payment_token=token)
        return placed.order.id

    return place_order


@pytest.fixture
def deliver(db, run_after_commit):
    """A function catching every subscriber up with the log (and whatever that appends)."""

    def catch_up():
        with run_after_commit():
            catch_up_all()

    return catch_up


@pytest.fixture
def expire_overdue(settings, run_after_commit):
    """A function giving up on every reply the sagas wait for (SAGA_STEP_TIMEOUT is 0 in the
    test) and running what that sets off; returns the order ids acted on."""
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0

    def expire():
        with run_after_commit():
            return sagas_expire()

    return expire


@pytest.fixture
def order_types(db):
    """A function giving the event types of an order's stream, in order."""

    def read(order_id):
        return [event.event_type for event in event_store.read_stream(events.ORDER, order_id)]

    return read


@pytest.fixture
def saga_types(db):
    """A function giving the event types of a saga's stream, in order."""

    def read(order_id):
        return [event.event_type for event in event_store.read_stream(events.SAGA, order_id)]

    return read


@pytest.fixture
def switched_off():
    """A context manager unregistering the named subscribers (e.g. "payments.requests") inside
    it, so the requests they would answer go unanswered; they are registered again on exit."""

    @contextmanager
    def off(*names):
        everyone = get_subscribers()
        for subscriber in get_subscribers(list(names)):
            unregister_subscriber(subscriber.name)
        try:
            yield
        finally:
            # Registered again in the original order: the dispatch loop follows it.
            for subscriber in everyone:
                unregister_subscriber(subscriber.name)
            for subscriber in everyone:
                register_subscriber(subscriber)

    return off


@pytest.fixture
def place_waiting(make_product, place):
    """A function placing an order (of "p1", created on first use) whose stock is reserved and
    whose payment never answers: its saga waits on process_payment."""

    def place_order(**kwargs):
        if not products.load_or_new("p1").exists:
            make_product("p1", stock=100)
        return place(token="tok_timeout", **kwargs)

    return place_order


@pytest.fixture
def order_row(db):
    """A function adding an OrderSummary row directly (for list-filter tests only: everywhere
    else orders are placed through the service)."""

    def make(order_id, *, customer_id="c-1", status="pending", created_at=None):
        created_at = created_at or timezone.now()
        if isinstance(created_at, str):
            created_at = datetime.fromisoformat(created_at)
        return OrderSummary.objects.create(
            order_id=order_id,
            customer_id=customer_id,
            status=status,
            items=[{"product_id": "p1", "quantity": 1, "unit_price": None}],
            version=1,
            created_at=created_at,
            updated_at=created_at,
        )

    return make


@pytest.fixture
def product(make_product):
    """Product p1, with 100 units in stock at 12.50."""
    return make_product("p1", stock=100, price="12.50")


@pytest.fixture
def replayed():
    """A function giving a fresh copy of an aggregate rebuilt from the events it recorded."""

    def replay(aggregate):
        copy = type(aggregate)(aggregate.id)
        for version, event in enumerate(aggregate.pending_events, start=1):
            copy.replay_payload(version, event.event_type, event.payload)
        return copy

    return replay


@pytest.fixture
def timed_out_payment(make_product, place, expire_overdue):
    """An order whose payment got no answer in time: its stock was released, it is cancelled."""
    make_product("p1", stock=10, price="12.50")
    order_id = place(token="tok_timeout")
    expire_overdue()
    return order_id


@pytest.fixture
def release_given_up(make_product, place, expire_overdue, switched_off, settings):
    """A function leaving an order's saga in compensation_failed: the payment timed out and the
    stock's release went unanswered SAGA_COMPENSATION_ATTEMPTS (2) times while inventory's
    subscriber was switched off (it is back on afterwards, with the requests still to read)."""
    settings.SAGA_COMPENSATION_ATTEMPTS = 2

    def give_up():
        make_product("p1", stock=10, price="12.50")
        order_id = place([("p1", 2)], token="tok_timeout")
        with switched_off("inventory.requests"):
            for _ in range(3):  # fail the step, send the release again, give up
                expire_overdue()
        assert saga_of(order_id).state == Saga.COMPENSATION_FAILED
        return order_id

    return give_up

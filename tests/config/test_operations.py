"""The admin's operations page: subscriber lag and errors, sagas by state and the last hour's
orders by outcome, for staff only."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.operations import BAR_MAX_WIDTH, outcome_bars
from eventstore.follower.subscriptions import Subscriber, catch_up, get_subscribers
from inventory.services import product_create
from orders.models import OrderSummary
from orders.services import order_place
from tests.factories import append_event
from tests.processes import held_transaction

pytestmark = pytest.mark.django_db

OPERATIONS = "/admin/operations/"
BAR = re.compile(r'<g class="bar (\w+)" data-outcome="([^"]+)" data-count="(\d+)">.*?</g>', re.S)


class Stalled(Subscriber):
    """Reads ThingHappened and has not caught up yet."""

    name = "tests.operations.stalled"
    event_types = frozenset({"ThingHappened"})

    def handle(self, event):
        pass


class Failing(Subscriber):
    """Reads ThingHappened and fails on every one."""

    name = "tests.operations.failing"
    event_types = frozenset({"ThingHappened"})

    def handle(self, event):
        raise RuntimeError("ledger unavailable")


@pytest.fixture
def staff_session(client, staff_user):
    """Django's test client with a staff user's session (no model permissions needed)."""
    client.force_login(staff_user)
    return client


@pytest.fixture
def place(django_capture_on_commit_callbacks):
    """A function placing an order of product "p1" and running its saga as far as the other
    services answer; returns the order id."""
    product_create(product_id="p1", name="Product p1", price=Decimal("12.50"), initial_stock=10)

    def place_order(*, quantity=1, token="tok_visa_success"):
        items = [{"product_id": "p1", "quantity": quantity}]
        with django_capture_on_commit_callbacks(execute=True):
            placed = order_place(customer_id="c-1", items=items, payment_token=token)
        return placed.order.id

    return place_order


def bars_of(page: str) -> dict[str, tuple[str, int]]:
    """The outcome chart's bars: outcome -> (kind, count); one entry per <g> bar."""
    [chart] = re.findall(r'<svg id="outcome-chart".*?</svg>', page, re.S)
    found = BAR.findall(chart)
    bars = {outcome: (kind, int(count)) for kind, outcome, count in found}
    assert len(bars) == len(found), "one bar per outcome"
    return bars


def test_staff_see_each_subscriber_partition_with_its_lag_and_last_error(staff_session, subscribe):
    subscribe(Stalled())
    subscribe(Failing())
    for _ in range(3):
        append_event(event_type="ThingHappened")
    catch_up(Failing())

    response = staff_session.get(OPERATIONS)

    assert response.status_code == 200
    page = response.content.decode()
    rows = {lag.subscriber: lag for lag in response.context["subscriber_lags"]}
    assert set(rows) == {subscriber.name for subscriber in get_subscribers()}
    assert (rows[Stalled.name].events, rows[Stalled.name].last_error) == (3, "")
    assert rows[Failing.name].events == 3
    assert "ledger unavailable" in rows[Failing.name].last_error
    stalled = re.search(rf"<tr>\s*<td>{re.escape(Stalled.name)}</td>.*?</tr>", page, re.S)
    failing = re.search(
        rf'<tr class="failing">\s*<td>{re.escape(Failing.name)}</td>.*?</tr>', page, re.S
    )
    assert stalled and '<td class="number lag">3</td>' in stalled.group()
    assert failing and '<td class="number lag">3</td>' in failing.group()
    assert "ledger unavailable" in failing.group()
    for subscriber in get_subscribers():
        assert f"<td>{subscriber.name}</td>" in page


@pytest.mark.postgres
def test_staff_see_the_transaction_subscribers_wait_for_and_the_one_they_leave_out(
    staff_session, settings
):
    settings.HEALTH_MAX_HELD_SECONDS = 0
    with held_transaction("psql") as ignored, held_transaction("order-processing") as waited:
        page = staff_session.get(OPERATIONS).content.decode()

    [waiting_for] = re.findall(r'<tr class="waiting_for failing">.*?</tr>', page, re.S)
    [oldest_ignored] = re.findall(r'<tr class="ignored">.*?</tr>', page, re.S)
    assert f'<td class="pid">{waited}</td>' in waiting_for
    assert "<td>order-processing</td><td>idle in transaction</td>" in re.sub(
        r"\s+<", "<", waiting_for
    )
    assert f'<td class="pid">{ignored}</td>' in oldest_ignored
    assert "<td>psql</td>" in oldest_ignored


def test_staff_see_sagas_by_state_and_the_last_hours_orders_by_outcome(staff_session, place):
    place()
    place()
    place(token="tok_decline")
    place(quantity=99)  # more than the stock: cancelled for a shortage
    place(token="tok_timeout")  # its payment never answers: the order stays open
    long_ago = place()
    OrderSummary.objects.filter(order_id=long_ago).update(
        created_at=timezone.now() - timedelta(hours=2)
    )

    response = staff_session.get(OPERATIONS)

    assert response.status_code == 200
    states = response.context["saga_states"]
    assert states == {
        "running": 1,
        "compensating": 0,
        "completed": 3,
        "compensated": 2,
        "compensation_failed": 0,
    }
    page = response.content.decode()
    for state, count in states.items():
        assert f'<tr><td>{state}</td><td class="number">{count}</td></tr>' in page
    assert bars_of(page) == {
        "completed": ("completed", 2),
        "cancelled: card_declined": ("cancelled", 1),
        "cancelled: insufficient_stock": ("cancelled", 1),
        "open": ("open", 1),
    }
    assert "5 orders placed since" in page


def test_the_chart_draws_each_bar_in_proportion_to_its_count(staff_session, place):
    for _ in range(4):
        place()
    place(token="tok_decline")

    page = staff_session.get(OPERATIONS).content.decode()

    [chart] = re.findall(r'<svg id="outcome-chart".*?</svg>', page, re.S)
    widths = dict(re.findall(r'data-outcome="([^"]+)".*?<rect [^>]*width="(\d+)"', chart, re.S))
    assert widths == {"completed": str(BAR_MAX_WIDTH), "cancelled: card_declined": "100"}
    assert "<script" not in page.split('id="content-main"')[1]


def test_with_no_orders_in_the_last_hour_no_chart_is_drawn(staff_session):
    response = staff_session.get(OPERATIONS)

    assert response.status_code == 200
    page = response.content.decode()
    assert "0 orders placed since" in page
    assert "outcome-chart" not in page


def test_outcome_bars_put_completed_first_then_cancellations_then_open_orders():
    bars = outcome_bars({"open": 2, "cancelled: b": 1, "completed": 8, "cancelled: a": 4})

    assert [(bar["outcome"], bar["count"], bar["width"]) for bar in bars] == [
        ("completed", 8, BAR_MAX_WIDTH),
        ("cancelled: a", 4, BAR_MAX_WIDTH // 2),
        ("cancelled: b", 1, BAR_MAX_WIDTH // 8),
        ("open", 2, BAR_MAX_WIDTH // 4),
    ]
    assert [bar["y"] for bar in bars] == sorted({bar["y"] for bar in bars})


def test_the_page_costs_the_same_queries_however_many_orders_there_are(staff_session, place):
    place()
    with CaptureQueriesContext(connection) as few:
        staff_session.get(OPERATIONS)
    for token in ("tok_visa_success", "tok_decline", "tok_timeout", "tok_visa_success"):
        place(token=token)
    with CaptureQueriesContext(connection) as many:
        staff_session.get(OPERATIONS)

    assert len(many) == len(few)


def test_a_user_who_is_not_staff_is_sent_to_the_admin_login(client, customer_user):
    client.force_login(customer_user)

    response = client.get(OPERATIONS)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/operations/")


def test_an_anonymous_visitor_is_sent_to_the_admin_login(client):
    response = client.get(OPERATIONS)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_admin_index_links_to_the_page_and_keeps_its_apps(staff_session, admin_client):
    page = staff_session.get("/admin/").content.decode()

    assert f'href="{OPERATIONS}"' in page
    assert "/admin/orders/ordersummary/" in admin_client.get("/admin/").content.decode()


def test_the_page_uses_the_admins_layout(staff_session):
    page = staff_session.get(OPERATIONS).content.decode()

    assert '<header id="header">' in page
    assert '<div id="site-name">' in page
    assert '<a href="/admin/">Home</a> &rsaquo; Operations' in page

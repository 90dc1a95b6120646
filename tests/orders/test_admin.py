"""The read-only admin of orders' read models: orders, sagas (with their step log) and the
catalogue."""

import re
from html import unescape

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import CatalogProduct, OrderSummary, SagaSummary
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ORDERS = "/admin/orders/ordersummary/"
SAGAS = "/admin/orders/sagasummary/"
CATALOGUE = "/admin/orders/catalogproduct/"


@pytest.fixture
def superuser_client(client, admin_user):
    """Django's test client with a superuser's session."""
    client.force_login(admin_user)
    return client


@pytest.fixture
def saga_admin():
    return admin.site._registry[SagaSummary]


def listed(response):
    assert response.status_code == 200
    return [str(row.pk) for row in response.context["cl"].result_list]


def saga_row(saga_id="s-1", *, steps=(), compensations=()):
    """A SagaSummary row made directly, to show how the admin renders odd entries."""
    now = timezone.now()
    return SagaSummary.objects.create(
        saga_id=saga_id,
        order_id=saga_id,
        state=SagaSummary.State.RUNNING,
        definition_version=1,
        steps=list(steps),
        compensations=list(compensations),
        version=1,
        started_at=now,
        updated_at=now,
    )


# --- changelists ---------------------------------------------------------------------------------


def test_the_order_changelist_lists_orders_with_status_and_total(
    superuser_client, make_product, place
):
    make_product("p1")
    completed = place(customer_id="c-7")
    cancelled = place(customer_id="c-8", token="tok_decline")

    response = superuser_client.get(ORDERS)

    assert listed(response) == [cancelled, completed]
    page = response.content.decode()
    assert "c-7" in page
    assert "card_declined" in page
    assert "25.00" in page


def test_the_order_changelist_filters_by_status_and_finds_an_order_by_exact_id(
    superuser_client, make_product, place
):
    make_product("p1")
    completed = place()
    cancelled = place(token="tok_decline")

    assert listed(superuser_client.get(ORDERS, {"status": "cancelled"})) == [cancelled]
    assert listed(superuser_client.get(ORDERS, {"cancel_reason": "card_declined"})) == [cancelled]
    assert listed(superuser_client.get(ORDERS, {"q": completed})) == [completed]
    assert listed(superuser_client.get(ORDERS, {"q": completed[:8]})) == []


def test_the_saga_changelist_shows_each_sagas_step_progress(superuser_client, make_product, place):
    make_product("p1")
    declined = place(token="tok_decline")
    waiting = place(token="tok_timeout")

    response = superuser_client.get(SAGAS)

    assert set(listed(response)) == {declined, waiting}
    page = response.content.decode()
    assert "✔ reserve_inventory ✘ process_payment · confirm_order · complete_order" in page
    assert "✔ reserve_inventory … process_payment · confirm_order · complete_order" in page
    assert listed(superuser_client.get(SAGAS, {"state": "running"})) == [waiting]
    assert listed(superuser_client.get(SAGAS, {"q": declined})) == [declined]


def test_a_step_status_the_admin_does_not_know_is_marked_with_a_question_mark(saga_admin):
    saga = saga_row(steps=[{"name": "ship", "status": "lost"}, {"name": "pay", "status": "failed"}])

    assert saga_admin.step_progress(saga) == "? ship ✘ pay"


def test_the_catalogue_changelist_lists_products_and_searches_by_name(
    superuser_client, make_product
):
    make_product("p1", name="Blue widget")
    make_product("p2", name="Red gadget")

    response = superuser_client.get(CATALOGUE)

    assert listed(response) == ["p1", "p2"]
    assert "Blue widget" in response.content.decode()
    assert listed(superuser_client.get(CATALOGUE, {"q": "gadget"})) == ["p2"]


# --- the saga's page -----------------------------------------------------------------------------


def test_the_saga_page_shows_its_step_log_and_compensations_as_tables(
    superuser_client, make_product, place
):
    make_product("p1")
    order_id = place(token="tok_decline")

    response = superuser_client.get(f"{SAGAS}{order_id}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert (
        "<thead><tr><th>name</th><th>status</th><th>started_at</th><th>finished_at</th>"
        "<th>error</th></tr></thead>"
    ) in page
    assert "<td>process_payment</td><td>failed</td>" in page
    assert "<td>refused: card_declined</td>" in page
    assert "<th>attempts</th>" in page
    assert "<td>release_inventory</td><td>succeeded</td><td>1</td>" in page


def test_the_saga_page_shows_a_dash_for_no_compensations(
    superuser_client, saga_admin, make_product, place
):
    make_product("p1")
    order_id = place()

    response = superuser_client.get(f"{SAGAS}{order_id}/change/")

    assert response.status_code == 200
    assert "<th>attempts</th>" not in response.content.decode()
    assert saga_admin.compensation_log(SagaSummary.objects.get()) == "-"


def test_the_log_table_escapes_its_values_and_leaves_missing_ones_empty(saga_admin):
    saga = SagaSummary(steps=[{"name": "<script>", "status": "failed", "error": None}])

    table = saga_admin.step_log(saga)

    assert table == (
        "<table><thead><tr><th>name</th><th>status</th><th>started_at</th><th>finished_at</th>"
        "<th>error</th></tr></thead><tbody><tr><td>&lt;script&gt;</td><td>failed</td><td></td>"
        "<td></td><td></td></tr></tbody></table>"
    )


def test_the_order_page_shows_the_order_read_only(superuser_client, make_product, place):
    make_product("p1")
    order_id = place()

    response = superuser_client.get(f"{ORDERS}{order_id}/change/")

    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()


def test_the_catalogue_page_is_titled_with_the_product_id(superuser_client, make_product):
    make_product("p1", name="Blue widget")

    response = superuser_client.get(f"{CATALOGUE}p1/change/")

    assert response.status_code == 200
    assert str(response.context["original"]) == "p1"
    assert "<h2>p1</h2>" in response.content.decode()


# --- links between an order's pages, customers by name ------------------------------------------


def related_links(page: str) -> dict[str, str]:
    """The "related pages" links of an admin page, by label."""
    related = page.split('class="form-row field-related"', 1)[1]
    related = related.split('<div class="readonly">', 1)[1].split("</div>", 1)[0]
    return {
        label: unescape(url) for url, label in re.findall(r'<a href="([^"]+)">([^<]+)</a>', related)
    }


def test_the_order_page_links_its_saga_reservation_payment_notifications_and_events(
    superuser_client, make_product, place
):
    make_product("p1")
    customer = UserFactory(username="alice")
    order_id = place(customer_id=str(customer.pk))

    page = superuser_client.get(f"{ORDERS}{order_id}/change/").content.decode()

    links = related_links(page)
    assert set(links) == {"saga", "reservation", "payment", "notifications", "events"}
    assert links["saga"] == f"{SAGAS}{order_id}/change/"
    assert links["events"] == f"/admin/eventstore/event/?correlation_id={order_id}"
    for label, url in links.items():
        response = superuser_client.get(url)
        assert response.status_code == 200, label
        if "cl" in response.context:  # a changelist filtered down to the order's own rows
            assert len(response.context["cl"].result_list) >= 1, label
            assert "?e=1" not in url
    assert [
        row.payment_id for row in superuser_client.get(links["payment"]).context["cl"].result_list
    ] == [order_id]
    notified = superuser_client.get(links["notifications"]).context["cl"].result_list
    assert {row.type for row in notified} == {"order_confirmed", "order_completed"}


def test_the_saga_page_links_back_to_its_order(superuser_client, make_product, place):
    make_product("p1")
    order_id = place()

    page = superuser_client.get(f"{SAGAS}{order_id}/change/").content.decode()

    links = related_links(page)
    assert links["order"] == f"{ORDERS}{order_id}/change/"
    assert superuser_client.get(links["order"]).status_code == 200


def test_the_order_changelist_shows_customers_by_username_from_one_query(
    superuser_client, make_product, place
):
    make_product("p1", stock=100)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for customer_id in (str(alice.pk), str(bob.pk), str(alice.pk), "c-7", str(bob.pk)):
        place(customer_id=customer_id)

    with CaptureQueriesContext(connection) as captured:
        response = superuser_client.get(ORDERS)

    cells = re.findall(r'<td class="field-customer">([^<]*)</td>', response.content.decode())
    assert sorted(cells) == ["alice", "alice", "bob", "bob", "c-7"]  # c-7: no account's id
    # The page's customers are looked up together, not once per row (the other query of the
    # user table is the session's own).
    lookups = [
        sql
        for sql in (query["sql"] for query in captured.captured_queries)
        if "auth_user" in sql and " IN (" in sql
    ]
    assert len(lookups) == 1, lookups


def test_the_order_page_names_the_customer_and_links_their_account(
    superuser_client, make_product, place
):
    make_product("p1")
    customer = UserFactory(username="alice")
    order_id = place(customer_id=str(customer.pk))

    page = superuser_client.get(f"{ORDERS}{order_id}/change/").content.decode()

    assert f'<a href="/admin/auth/user/{customer.pk}/change/">alice</a>' in page
    assert f'<a href="{ORDERS}?customer_id={customer.pk}">all their orders</a>' in page


# --- read-only -----------------------------------------------------------------------------------


@pytest.mark.parametrize("changelist", [ORDERS, SAGAS, CATALOGUE])
def test_orders_read_models_cannot_be_added(superuser_client, changelist):
    assert superuser_client.get(f"{changelist}add/").status_code == 403
    assert f"{changelist}add/" not in superuser_client.get(changelist).content.decode()


def test_orders_read_models_cannot_be_changed_or_deleted(superuser_client, make_product, place):
    make_product("p1")
    order_id = place()
    pages = [(ORDERS, order_id), (SAGAS, order_id), (CATALOGUE, "p1")]

    for changelist, pk in pages:
        assert superuser_client.post(f"{changelist}{pk}/change/", {}).status_code == 403
        assert superuser_client.post(f"{changelist}{pk}/delete/", {"post": "yes"}).status_code == (
            403
        )
        superuser_client.post(
            changelist, {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
        )

    assert OrderSummary.objects.get().status == "completed"
    assert SagaSummary.objects.filter(pk=order_id).exists()
    assert CatalogProduct.objects.filter(pk="p1").exists()


def test_the_orders_admin_is_closed_to_staff_without_permissions(client, staff_user):
    client.force_login(staff_user)

    assert client.get(ORDERS).status_code == 403

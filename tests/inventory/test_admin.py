"""The read-only admin of inventory's read models: product stock and reservations."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.utils.html import escape

from inventory.models import ProductStock, ReservationSummary
from inventory.services import product_discontinue, stock_adjust, stock_commit, stock_reserve

pytestmark = pytest.mark.django_db

PRODUCT_CHANGELIST = "/admin/inventory/productstock/"
RESERVATION_CHANGELIST = "/admin/inventory/reservationsummary/"


@pytest.fixture
def superuser_client(client):
    """Django's test client with a superuser's session."""
    superuser = get_user_model().objects.create_superuser(
        "inventory-admin", "inventory-admin@example.com", "correct horse battery staple"
    )
    client.force_login(superuser)
    return client


@pytest.fixture
def history(make_product):
    """Two products and a reservation of each outcome, made through the services."""
    make_product("apple", stock=10, price="0.50", name="Green apple")
    make_product("banana", stock=1, price="0.25", name="Banana")
    stock_reserve(reservation_id="r-held", items=[{"product_id": "apple", "quantity": 3}])
    stock_reserve(reservation_id="r-sold", items=[{"product_id": "apple", "quantity": 1}])
    stock_commit(reservation_id="r-sold")
    stock_reserve(reservation_id="r-short", items=[{"product_id": "banana", "quantity": 5}])


def listed(response):
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_product_changelist_lists_every_product_with_its_stock(superuser_client, history):
    response = superuser_client.get(PRODUCT_CHANGELIST)

    assert [row.product_id for row in listed(response)] == ["apple", "banana"]
    page = response.content.decode()
    assert "Green apple" in page
    assert "Banana" in page


def test_product_search_finds_a_product_by_name(superuser_client, history):
    response = superuser_client.get(PRODUCT_CHANGELIST, {"q": "green"})

    assert [row.product_id for row in listed(response)] == ["apple"]


def test_product_change_page_shows_the_stock_read_only(superuser_client, history):
    response = superuser_client.get(f"{PRODUCT_CHANGELIST}apple/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Green apple" in page
    assert 'name="_save"' not in page


def test_product_change_page_shows_the_units_balance_with_adjustments(superuser_client, history):
    stock_adjust(product_id="apple", quantity=-2, reason="damaged")

    page = superuser_client.get(f"{PRODUCT_CHANGELIST}apple/change/").content.decode()

    assert "Available + reserved + sold = received + adjusted" in page
    # 10 received, 2 written off, 3 held, 1 sold.
    assert "4 + 3 + 1 = 10 + -2 (balanced)" in page
    assert "aggregate_type=product&amp;aggregate_id=apple" in page


def test_product_changelist_filters_by_status(superuser_client, history):
    product_discontinue(product_id="banana")

    response = superuser_client.get(PRODUCT_CHANGELIST, {"status": "discontinued"})

    assert [row.product_id for row in listed(response)] == ["banana"]


def test_reservation_changelist_lists_every_reservation(superuser_client, history):
    response = superuser_client.get(RESERVATION_CHANGELIST)

    assert {row.reservation_id for row in listed(response)} == {"r-held", "r-sold", "r-short"}


def test_reservation_changelist_filters_by_status(superuser_client, history):
    response = superuser_client.get(RESERVATION_CHANGELIST, {"status": "failed"})

    assert [row.reservation_id for row in listed(response)] == ["r-short"]


def test_reservation_search_finds_a_reservation_by_exact_id(superuser_client, history):
    response = superuser_client.get(RESERVATION_CHANGELIST, {"q": "r-held"})

    assert [row.reservation_id for row in listed(response)] == ["r-held"]


def test_reservation_change_page_shows_lines_and_shortage_details(superuser_client, history):
    held = superuser_client.get(f"{RESERVATION_CHANGELIST}r-held/change/")
    short = superuser_client.get(f"{RESERVATION_CHANGELIST}r-short/change/")

    assert (held.status_code, short.status_code) == (200, 200)
    lines = ReservationSummary.objects.get(pk="r-held").lines
    details = ReservationSummary.objects.get(pk="r-short").details
    assert f"<pre>{escape(json.dumps(lines, indent=2, sort_keys=True))}</pre>" in (
        held.content.decode()
    )
    assert f"<pre>{escape(json.dumps(details, indent=2, sort_keys=True))}</pre>" in (
        short.content.decode()
    )
    assert 'name="_save"' not in held.content.decode()


@pytest.mark.parametrize("changelist", [PRODUCT_CHANGELIST, RESERVATION_CHANGELIST])
def test_add_page_is_forbidden(superuser_client, changelist):
    response = superuser_client.get(f"{changelist}add/")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("changelist", "key", "model"),
    [
        (PRODUCT_CHANGELIST, "apple", ProductStock),
        (RESERVATION_CHANGELIST, "r-held", ReservationSummary),
    ],
)
def test_delete_is_forbidden_and_keeps_the_row(superuser_client, history, changelist, key, model):
    delete_url = f"{changelist}{key}/delete/"

    assert superuser_client.get(delete_url).status_code == 403
    assert superuser_client.post(delete_url, {"post": "yes"}).status_code == 403
    superuser_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [key], "post": "yes"}
    )
    assert model.objects.filter(pk=key).exists()


def test_change_page_refuses_a_post(superuser_client, history):
    response = superuser_client.post(
        f"{PRODUCT_CHANGELIST}apple/change/", {"name": "Rewritten", "available_stock": 99}
    )

    assert response.status_code == 403
    assert ProductStock.objects.get(pk="apple").name == "Green apple"


@pytest.mark.parametrize("changelist", [PRODUCT_CHANGELIST, RESERVATION_CHANGELIST])
def test_changelist_offers_no_add_link_and_no_delete_action(superuser_client, history, changelist):
    response = superuser_client.get(changelist)

    page = response.content.decode()
    assert f"{changelist}add/" not in page
    assert "delete_selected" not in page

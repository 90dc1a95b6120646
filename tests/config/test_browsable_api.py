"""The browsable API offers each command endpoint's own input fields as a JSON form (the API
parses JSON only), and still renders every page."""

import json
import re
from decimal import Decimal
from html import unescape

import pytest

from inventory.services import product_create

pytestmark = pytest.mark.django_db

# The raw-data form's media type choice: JSON, and nothing else.
JSON_ONLY = '<option value="application/json" selected>application/json</option>\n\n</select>'


@pytest.mark.parametrize(
    ("url", "fields"),
    [
        ("/api/inventory/", {"product_id", "name", "price", "initial_stock"}),
        ("/api/inventory/reserve/", {"reservation_id"}),
        ("/api/inventory/release/", {"reservation_id"}),
        ("/api/payments/charge/", {"payment_id", "customer_id", "amount", "payment_token"}),
        ("/api/payments/refund/", {"transaction_id"}),
        ("/api/notifications/send/", {"customer_id", "type", "message"}),
    ],
)
def test_a_command_page_renders_a_json_form_with_the_commands_fields(
    client, staff_user, url, fields
):
    client.force_login(staff_user)

    response = client.get(url, HTTP_ACCEPT="text/html")

    # Command endpoints answer GET with 405, and the page still offers the POST form.
    assert response.status_code in (200, 405)
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert JSON_ONLY in html
    for field in fields:
        assert f"&quot;{field}&quot;" in html, field


def test_the_restock_page_offers_the_quantity_field(client, staff_user):
    product_create(product_id="sku-1", name="Widget", price=Decimal("1.00"))
    client.force_login(staff_user)

    html = client.get("/api/inventory/sku-1/restock/", HTTP_ACCEPT="text/html").content.decode()

    assert "&quot;quantity&quot;" in html


def _form_content(html: str) -> dict:
    """The body the page's raw-data form starts with."""
    match = re.search(r'<textarea name="_content"[^>]*>(.*?)</textarea>', html, re.DOTALL)
    assert match, "no raw-data form"
    return json.loads(unescape(match.group(1)))


def test_the_orders_form_holds_only_what_a_customer_sends(client, customer_user):
    client.force_login(customer_user)

    html = client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode()

    # Lines are a list, which HTML forms cannot hold: the raw JSON form, with one line to fill
    # in, the default payment token, and no customer_id (staff only, "" would be refused).
    assert JSON_ONLY in html
    assert _form_content(html) == {
        "items": [{"product_id": "", "quantity": None}],
        "payment_token": "tok_visa_success",
    }


def test_the_orders_form_sent_as_it_stands_with_its_line_filled_in_places_an_order(
    client, customer_user
):
    product_create(product_id="sku-1", name="Widget", price=Decimal("1.00"), initial_stock=5)
    client.force_login(customer_user)
    body = _form_content(client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode())
    body["items"][0].update(product_id="sku-1", quantity=2)

    # What the browser sends: the form's content, as its media type (application/json) says.
    response = client.post(
        "/api/orders/", json.dumps(body), content_type="application/json", HTTP_ACCEPT="text/html"
    )

    assert response.status_code == 201
    placed = client.get("/api/orders/", HTTP_ACCEPT="application/json").json()["results"]
    assert [order["items"] for order in placed] == [
        [{"product_id": "sku-1", "quantity": 2, "unit_price": None}]
    ]


def test_a_command_form_leaves_out_an_optional_field_whose_blank_would_be_refused(
    client, staff_user
):
    client.force_login(staff_user)

    html = client.get("/api/notifications/send/", HTTP_ACCEPT="text/html").content.decode()

    # order_id is optional, and "" is no order id: the form leaves it out.
    assert _form_content(html) == {"customer_id": "", "type": "", "message": ""}


@pytest.mark.parametrize(
    "url", ["/api/", "/api/orders/", "/api/inventory/", "/api/notifications/", "/api/events/"]
)
def test_pages_still_render_for_reading(client, staff_user, url):
    client.force_login(staff_user)

    response = client.get(url, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")

"""The browsable API offers each command endpoint's own input fields as a JSON form (the API
parses JSON only), and still renders every page."""

from decimal import Decimal

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
        ("/api/notifications/send/", {"customer_id", "type", "message", "order_id"}),
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


def test_the_orders_page_offers_an_order_as_raw_json_with_its_fields(client, customer_user):
    client.force_login(customer_user)

    html = client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode()

    # Lines are a list, which HTML forms cannot hold: the raw JSON form names every field.
    assert JSON_ONLY in html
    for field in ("customer_id", "items", "payment_token"):
        assert f"&quot;{field}&quot;" in html, field


@pytest.mark.parametrize(
    "url", ["/api/", "/api/orders/", "/api/inventory/", "/api/notifications/", "/api/events/"]
)
def test_pages_still_render_for_reading(client, staff_user, url):
    client.force_login(staff_user)

    response = client.get(url, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


def test_the_json_form_places_an_order(client, customer_user):
    product_create(product_id="sku-1", name="Widget", price=Decimal("1.00"), initial_stock=5)
    client.force_login(customer_user)

    # What the raw-data form sends: its content, as application/json.
    response = client.post(
        "/api/orders/",
        '{"items": [{"product_id": "sku-1", "quantity": 1}]}',
        content_type="application/json",
        HTTP_ACCEPT="text/html",
    )

    assert response.status_code == 201

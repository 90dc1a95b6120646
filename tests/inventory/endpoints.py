"""The inventory API's URLs and request bodies, and reading its list answers."""

LIST_URL = "/api/inventory/"
RESERVE_URL = "/api/inventory/reserve/"
RELEASE_URL = "/api/inventory/release/"


def detail_url(product_id):
    return f"{LIST_URL}{product_id}/"


def restock_url(product_id):
    return f"{LIST_URL}{product_id}/restock/"


def product_body(product_id="p1", **overrides):
    return {"product_id": product_id, "name": "Blue widget", "price": "12.50", **overrides}


def reserve_body(reservation_id="order-1", *items):
    return {
        "reservation_id": reservation_id,
        "items": [
            {"product_id": product_id, "quantity": quantity} for product_id, quantity in items
        ],
    }


def listed_ids(response):
    assert response.status_code == 200
    return [item["product_id"] for item in response.json()["results"]]


def adjust_url(product_id):
    return f"{LIST_URL}{product_id}/adjust/"


def restore_url(product_id):
    return f"{LIST_URL}{product_id}/restore/"


def history_url(product_id):
    return f"{LIST_URL}{product_id}/history/"

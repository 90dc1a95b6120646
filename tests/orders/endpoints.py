"""The orders API's URLs, and placing an order through it as a client would."""

LIST_URL = "/api/orders/"


def detail_url(order_id, action=""):
    return f"{LIST_URL}{order_id}/{action + '/' if action else ''}"


def body(**overrides):
    data = {"items": [{"product_id": "p1", "quantity": 2}], "payment_token": "tok_visa_success"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def post(client, key=None, prefer=None, **overrides):
    headers = {"Idempotency-Key": key} if key is not None else {}
    if prefer is not None:
        headers["Prefer"] = prefer
    return client.post(LIST_URL, body(**overrides), format="json", headers=headers)


def listed(response):
    assert response.status_code == 200
    return [order["order_id"] for order in response.json()["results"]]


def assert_replayed(first, again, status):
    """`again`, a placement repeated with the same Idempotency-Key, answers `status` as the
    first did, with the same order and location, and says it is a replay."""
    assert first.status_code == again.status_code == status
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]

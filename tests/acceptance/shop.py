"""A thin driver over the HTTP API, as the shop's staff and customers use it, and the checks
every scenario makes on an order's event history."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rest_framework.test import APIClient

FINAL_STATUSES = ("completed", "cancelled")
STEP_NAMES = ["reserve_inventory", "process_payment", "confirm_order", "complete_order"]


def customer_id_of(client: APIClient) -> str:
    """A customer's id as the API documents it: their user's primary key as a string."""
    return str(client.user.pk)


def get_json(client: APIClient, url: str) -> Any:
    """The JSON body of a GET that must answer 200."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content)
    return response.json()


def all_pages(client: APIClient, url: str) -> list[dict[str, Any]]:
    """Every result of a paginated list, following `next` to the end."""
    results: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        page = get_json(client, next_url)
        results.extend(page["results"])
        next_url = page["next"]
    return results


class Shop:
    """The shop's API: staff stock it and read payments; customers order and read their own."""

    def __init__(self, staff: APIClient) -> None:
        self.staff = staff

    # --- staff ---------------------------------------------------------------------------------

    def add_product(self, product_id: str, *, price: str, stock: int) -> dict[str, Any]:
        """POST /api/inventory/ as staff; the created product."""
        body = {
            "product_id": product_id,
            "name": f"Product {product_id}",
            "price": price,
            "initial_stock": stock,
        }
        response = self.staff.post("/api/inventory/", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    def product(self, product_id: str) -> dict[str, Any]:
        """GET /api/inventory/{product_id}/: price and stock figures."""
        return get_json(self.staff, f"/api/inventory/{product_id}/")

    def stock(self, product_id: str) -> tuple[int, int, int]:
        """(available, reserved, sold) of a product."""
        product = self.product(product_id)
        return product["available_stock"], product["reserved_stock"], product["sold_stock"]

    def payments(self) -> list[dict[str, Any]]:
        """GET /api/payments/ as staff, every page."""
        return all_pages(self.staff, "/api/payments/")

    def charge(self, *, payment_id: str, customer_id: str, amount: str, payment_token: str) -> Any:
        """POST /api/payments/charge/ as staff (the raw response)."""
        body = {
            "payment_id": payment_id,
            "customer_id": customer_id,
            "amount": amount,
            "payment_token": payment_token,
        }
        return self.staff.post("/api/payments/charge/", body, format="json")

    def charge_late(self, client: APIClient, placed: Mapping[str, Any]) -> None:
        """Charge a placed order for its total as staff, with a token that succeeds: the late
        answer to a payment its saga may have given up on."""
        response = self.charge(
            payment_id=placed["order_id"],
            customer_id=customer_id_of(client),
            amount=placed["total_amount"],
            payment_token="tok_visa_success",
        )
        assert response.status_code == 200, response.content

    # --- customers (or staff acting for them) ---------------------------------------------------

    def place_order(
        self,
        client: APIClient,
        items: Mapping[str, int],
        *,
        payment_token: str | None = None,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/orders/; the 201 answer (the saga has run as far as it could)."""
        body: dict[str, Any] = {
            "items": [{"product_id": pid, "quantity": qty} for pid, qty in items.items()]
        }
        if payment_token is not None:
            body["payment_token"] = payment_token
        if customer_id is not None:
            body["customer_id"] = customer_id
        response = client.post("/api/orders/", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    def order(self, client: APIClient, order_id: str) -> dict[str, Any]:
        return get_json(client, f"/api/orders/{order_id}/")

    def events(self, client: APIClient, order_id: str) -> list[dict[str, Any]]:
        return get_json(client, f"/api/orders/{order_id}/events/")

    def saga(self, client: APIClient, order_id: str) -> dict[str, Any]:
        return get_json(client, f"/api/orders/{order_id}/saga/")

    def notifications(self, client: APIClient) -> list[dict[str, Any]]:
        """GET /api/notifications/{customer_id}/ as that customer, newest first."""
        return get_json(client, f"/api/notifications/{customer_id_of(client)}/")


def expected_total(shop: Shop, items: Mapping[str, int]) -> Decimal:
    """What an order of `items` must cost at the prices inventory shows."""
    return sum(
        (Decimal(shop.product(pid)["price"]) * qty for pid, qty in items.items()), Decimal("0")
    )


def event_types(history: list[dict[str, Any]]) -> list[str]:
    return [event["event_type"] for event in history]


def causal_chain(history: list[dict[str, Any]], order_id: str) -> list[tuple[str, str | None]]:
    """(event type, type of the event that caused it) for each event, in position order.

    Also checks what must hold for every order: positions increase, every event is correlated
    with the order, and every cause is an earlier event of the same history.
    """
    positions = [event["position"] for event in history]
    assert positions == sorted(set(positions)), positions
    by_id = {event["event_id"]: event for event in history}
    chain: list[tuple[str, str | None]] = []
    for event in history:
        metadata = event["metadata"]
        assert metadata.get("correlation_id") == order_id, event
        cause_id = metadata.get("causation_id")
        if cause_id is None:
            chain.append((event["event_type"], None))
            continue
        cause = by_id.get(cause_id)
        assert cause is not None, f"{event['event_type']} names a cause outside the history"
        assert cause["position"] < event["position"], (cause, event)
        chain.append((event["event_type"], cause["event_type"]))
    return chain


def step_statuses(saga: dict[str, Any]) -> dict[str, str]:
    """The saga's steps, name -> status, in definition order."""
    return {step["name"]: step["status"] for step in saga["steps"]}


def compensation_statuses(saga: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """The saga's compensations, name -> (status, attempts)."""
    return {entry["name"]: (entry["status"], entry["attempts"]) for entry in saga["compensations"]}

"""Scenario: a customer's payment token never enters the log. The order's events name it by a
vault reference and a safe description; the vault holds it encrypted, and forgets it once the
charge is decided (or its retention runs out, and the payment then fails with token_expired);
events stored before tokens were vaulted read masked everywhere."""

import json

import pytest

from eventstore.models import Event, Snapshot, VaultedSecret
from eventstore.store import NewEvent, event_store
from eventstore.vault import vault_take
from payments.gateway import get_gateway
from tests.acceptance.shop import all_pages

pytestmark = pytest.mark.django_db(transaction=True)

TOKENS = ("tok_visa_success", "tok_decline", "tok_insufficient_funds", "tok_timeout")


@pytest.fixture
def superuser_client(client, admin_user):
    client.force_login(admin_user)
    return client


def stored_text() -> str:
    """Every stored event's payload and metadata, and every snapshot, as one JSON text."""
    rows = list(Event.objects.values_list("payload", "metadata"))
    rows += list(Snapshot.objects.values_list("state", flat=True))
    return json.dumps(rows)


def admin_pages(client, order_id: str) -> str:
    """The admin change page of every event of the order, concatenated."""
    pages = []
    for position in Event.objects.filter(correlation_id=order_id).values_list(
        "position", flat=True
    ):
        response = client.get(f"/admin/eventstore/event/{position}/change/")
        assert response.status_code == 200
        pages.append(response.content.decode())
    return "".join(pages)


@pytest.mark.parametrize(
    ("token", "status", "reason", "card"),
    [
        ("tok_visa_success", "completed", "", ("visa", "4242")),
        ("tok_decline", "cancelled", "card_declined", ("visa", "0002")),
        ("tok_insufficient_funds", "cancelled", "insufficient_funds", ("visa", "9995")),
    ],
)
def test_no_api_admin_page_or_stored_event_shows_the_payment_token(
    shop, customer_client, staff_client, superuser_client, token, status, reason, card
):
    shop.add_product("sku-widget", price="9.99", stock=10)

    placed = shop.place_order(customer_client, {"sku-widget": 2}, payment_token=token)

    order_id = placed["order_id"]
    assert (placed["status"], placed["cancel_reason"] or "") == (status, reason)
    customer_view = json.dumps(shop.events(customer_client, order_id))
    staff_view = json.dumps(all_pages(staff_client, "/api/events/"))
    for seen in (customer_view, staff_view, admin_pages(superuser_client, order_id)):
        assert token not in seen
    assert token not in stored_text()
    # What the log says instead: the card's brand and last four digits, and the vault reference.
    created = shop.events(customer_client, order_id)[0]
    payment_method = created["payload"]["payment_method"]
    assert (payment_method["kind"], payment_method["last4"]) == card
    assert "payment_token" not in created["payload"]
    # The charge is decided: the vault no longer holds the token.
    assert not VaultedSecret.objects.exists()


@pytest.mark.parametrize("token", TOKENS)
def test_the_vault_holds_a_waiting_token_encrypted_never_in_clear(
    shop, customer_client, settings, token
):
    shop.add_product("sku-widget", price="9.99", stock=10)
    # No subscriber runs: the order waits to be charged, its token in the vault.
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False

    placed = shop.place_order(customer_client, {"sku-widget": 2}, payment_token=token)

    [row] = VaultedSecret.objects.values()
    assert token not in json.dumps(row, default=str)
    assert token not in stored_text()
    # Yet payments, taking it by the reference the log carries, gets the token back.
    events = shop.events(customer_client, placed["order_id"])
    [created] = [event for event in events if event["event_type"] == "OrderCreated"]
    assert vault_take(created["payload"]["payment_token_ref"]) == token


def test_a_token_past_its_retention_fails_the_payment_and_the_saga_compensates(
    shop, customer_client, settings
):
    settings.PAYMENTS_TOKEN_RETENTION_HOURS = 0
    shop.add_product("sku-widget", price="9.99", stock=10)

    placed = shop.place_order(customer_client, {"sku-widget": 2})

    order = shop.order(customer_client, placed["order_id"])
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "token_expired")
    assert shop.stock("sku-widget") == (10, 0, 0)
    assert [(p["status"], p["reason"]) for p in shop.payments()] == [("failed", "token_expired")]
    assert get_gateway().charges == {}
    assert not VaultedSecret.objects.exists()


@pytest.mark.parametrize("token", TOKENS)
def test_events_stored_with_a_raw_token_read_masked_everywhere(
    staff_client, superuser_client, token, settings
):
    order_id = "legacy-order"
    created = {
        "order_id": order_id,
        "customer_id": "c-1",
        "items": [{"product_id": "sku-widget", "quantity": 1}],
        "payment_token": token,
        "idempotency_key": "",
    }
    requested = {
        "payment_id": order_id,
        "customer_id": "c-1",
        "amount": "9.99",
        "payment_token": token,
        "step": "process_payment",
    }
    metadata = {"correlation_id": order_id, "actor": "test"}
    # Stored as the old schema wrote them; no subscriber runs (no saga, no charge).
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False
    event_store.append_to_stream(
        "order", order_id, [NewEvent("OrderCreated", created, metadata, schema_version=1)]
    )
    event_store.append_to_stream(
        "saga", order_id, [NewEvent("PaymentRequested", requested, metadata, schema_version=1)]
    )

    order_view = staff_client.get(f"/api/orders/{order_id}/events/")
    log_view = staff_client.get("/api/events/")

    assert order_view.status_code == log_view.status_code == 200
    for seen in (
        order_view.content.decode(),
        log_view.content.decode(),
        admin_pages(superuser_client, order_id),
    ):
        assert token not in seen
    shown = {event["event_type"]: event for event in order_view.json()}
    for event_type in ("OrderCreated", "PaymentRequested"):
        payload = shown[event_type]["payload"]
        assert shown[event_type]["schema_version"] == 2
        assert "payment_token" not in payload
        assert payload["payment_token_ref"] is None
        assert payload["payment_method"]["kind"] in ("visa", "token")
    # The stored rows are untouched: history is never rewritten, only read masked.
    assert Event.objects.get(event_type="OrderCreated").payload["payment_token"] == token

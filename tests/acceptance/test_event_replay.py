"""Scenario: after orders of every outcome, wiping every read model and replaying the log gives
back exactly the answers the API gave before."""

import re
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from eventstore.models import Event
from eventstore.projections import get_projections
from inventory.models import ProductStock
from orders.models import OrderSummary, SagaSummary
from payments.models import PaymentSummary
from tests.acceptance.shop import all_pages, customer_id_of, get_json
from tests.notifications.push_service import Browser
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def busy_shop(shop, staff_client, customer_client, other_customer_client, settings):
    """A shop after orders of every outcome, placed by two customers and by staff for one of
    them. Returns {outcome: order_id} and the client owning each order."""
    alice, bob = customer_client, other_customer_client
    shop.add_product("sku-widget", price="9.99", stock=10)
    shop.add_product("sku-gadget", price="24.50", stock=4)
    shop.add_product("sku-sprocket", price="0.35", stock=500)
    restock = staff_client.post(
        "/api/inventory/sku-gadget/restock/", {"quantity": 2}, format="json"
    )
    assert restock.status_code == 200, restock.content
    shop.add_product("sku-retired", price="5.00", stock=3)
    for method, url, body in [
        ("patch", "/api/inventory/sku-widget/", {"price": "10.49", "reason": "new price list"}),
        ("post", "/api/inventory/sku-retired/adjust/", {"quantity": -1, "reason": "damaged"}),
        ("delete", "/api/inventory/sku-retired/", None),
    ]:
        changed = getattr(staff_client, method)(url, body, format="json")
        assert changed.status_code == 200, changed.content
    promotion = staff_client.post(
        "/api/notifications/send/",
        {"customer_id": customer_id_of(alice), "type": "promotion", "message": "20% off"},
        format="json",
    )
    assert promotion.status_code == 201, promotion.content

    orders = {}
    owners = {}

    def place(outcome, client, items, *, owner=None, **options):
        placed = shop.place_order(client, items, **options)
        orders[outcome] = placed["order_id"]
        owners[outcome] = owner or client
        return placed

    place("completed", alice, {"sku-widget": 2, "sku-sprocket": 7})
    place(
        "completed_for_bob_by_staff",
        staff_client,
        {"sku-gadget": 1},
        customer_id=customer_id_of(bob),
        owner=bob,
    )
    place("shortage", bob, {"sku-gadget": 50})
    place("discontinued", alice, {"sku-retired": 1})
    place("declined", alice, {"sku-widget": 1}, payment_token="tok_decline")
    place("insufficient_funds", bob, {"sku-sprocket": 3}, payment_token="tok_insufficient_funds")
    place("timed_out", alice, {"sku-gadget": 2}, payment_token="tok_timeout")
    late = place(
        "refunded_late", bob, {"sku-widget": 1, "sku-sprocket": 1}, payment_token="tok_timeout"
    )
    place("completed_again", bob, {"sku-widget": 1})
    place("cancelled_after_completion", alice, {"sku-widget": 1, "sku-sprocket": 4})
    cancelled = alice.post(
        f"/api/orders/{orders['cancelled_after_completion']}/cancel/",
        {"reason": "ordered twice"},
        format="json",
    )
    assert cancelled.status_code == 200, cancelled.content

    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    call_command("expire_sagas", verbosity=0)
    shop.charge_late(bob, late)
    # Placed after the expiry: its saga still waits on the gateway when the log is replayed.
    place("waiting", alice, {"sku-sprocket": 2}, payment_token="tok_timeout")

    statuses = {outcome: shop.order(staff_client, oid)["status"] for outcome, oid in orders.items()}
    assert statuses == {
        "completed": "completed",
        "completed_for_bob_by_staff": "completed",
        "shortage": "cancelled",
        "discontinued": "cancelled",
        "declined": "cancelled",
        "insufficient_funds": "cancelled",
        "timed_out": "cancelled",
        "refunded_late": "cancelled",
        "completed_again": "completed",
        "cancelled_after_completion": "refunded",
        "waiting": "inventory_reserved",
    }
    assert {p["status"] for p in shop.payments()} == {"processed", "failed", "refunded"}
    # A browser of bob's subscribed to push, another unsubscribed (after the orders: no push
    # goes out here).
    for name in ("phone", "laptop"):
        subscribed = bob.post(
            "/api/notifications/push-subscriptions/", push_subscription(name), format="json"
        )
        assert subscribed.status_code == 201, subscribed.content
    gone = bob.delete(
        f"/api/notifications/push-subscriptions/{subscribed.json()['subscription_id']}/"
    )
    assert gone.status_code == 204
    # Webhook endpoints registered by staff, after the orders (no delivery goes out here): one
    # changed, its secret rotated and disabled, another deleted.
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    hooks = "/api/webhooks/endpoints/"
    erp, old = (
        staff_client.post(hooks, {"url": f"http://127.0.0.1:9/{name}"}, format="json").json()
        for name in ("erp", "old")
    )
    for method, url, body in [
        ("patch", f"{hooks}{erp['endpoint_id']}/", {"description": "ERP", "enabled": False}),
        ("post", f"{hooks}{erp['endpoint_id']}/rotate-secret/", None),
        ("delete", f"{hooks}{old['endpoint_id']}/", None),
    ]:
        changed = getattr(staff_client, method)(url, body, format="json")
        assert changed.status_code in (200, 204), changed.content
    return orders, owners


def push_subscription(name):
    """A browser's PushSubscription JSON (the keys are a real P-256 point and 16 bytes)."""
    browser = Browser()
    return {
        "endpoint": f"https://push.example.net/send/{name}",
        "keys": {"p256dh": browser.p256dh, "auth": browser.auth},
    }


def api_answers(shop, staff, customers, orders, owners):
    """Every answer the API gives about the shop, keyed by who asked what."""
    answers = {
        "staff orders": all_pages(staff, "/api/orders/"),
        "inventory": all_pages(staff, "/api/inventory/"),
        "push subscriptions": all_pages(staff, "/api/notifications/push-subscriptions/"),
        "payments": shop.payments(),
        "staff notifications": all_pages(staff, "/api/notifications/"),
        "event log": all_pages(staff, "/api/events/?page_size=1000"),
        "webhook endpoints": all_pages(staff, "/api/webhooks/endpoints/"),
    }
    for product in answers["inventory"]:
        answers[f"product {product['product_id']}"] = shop.product(product["product_id"])
        answers[f"history of {product['product_id']}"] = all_pages(
            staff, f"/api/inventory/{product['product_id']}/history/"
        )
    for payment in answers["payments"]:
        answers[f"payment {payment['payment_id']}"] = get_json(
            staff, f"/api/payments/{payment['payment_id']}/"
        )
    for customer in customers:
        who = customer_id_of(customer)
        answers[f"orders of {who}"] = all_pages(customer, "/api/orders/")
        answers[f"products on sale to {who}"] = all_pages(customer, "/api/inventory/")
        answers[f"notifications of {who}"] = shop.notifications(customer)
        answers[f"notification list of {who}"] = all_pages(customer, "/api/notifications/")
    for outcome, order_id in orders.items():
        for client, who in ((owners[outcome], "owner"), (staff, "staff")):
            answers[f"{outcome} order ({who})"] = shop.order(client, order_id)
            answers[f"{outcome} events ({who})"] = shop.events(client, order_id)
            answers[f"{outcome} saga ({who})"] = shop.saga(client, order_id)
    return answers


def read_model_counts():
    return {
        model._meta.label: model.objects.count()
        for projection in get_projections()
        for model in projection.models
    }


def tamper_with_read_models(orders, owner_id):
    """Leave the read models wrong in every way a rebuild must repair: a row derived from no
    event, changed rows and missing rows."""
    now = datetime.now(UTC)
    OrderSummary.objects.create(
        order_id="ghost-order",
        customer_id=owner_id,
        status="completed",
        items=[],
        version=1,
        created_at=now,
        updated_at=now,
    )
    OrderSummary.objects.filter(pk=orders["completed"]).update(status="pending")
    SagaSummary.objects.filter(order_id=orders["refunded_late"]).delete()
    PaymentSummary.objects.update(status="failed")
    ProductStock.objects.filter(pk="sku-widget").update(price="1.00", name="Tampered")
    ProductStock.objects.filter(pk="sku-sprocket").delete()
    Endpoint.objects.update(enabled=True, description="tampered", secret_ref="")


def test_rebuilding_every_projection_gives_back_every_api_answer(
    shop, staff_client, customer_client, other_customer_client, busy_shop
):
    orders, owners = busy_shop
    customers = (customer_client, other_customer_client)
    before = api_answers(shop, staff_client, customers, orders, owners)
    counts_before = read_model_counts()
    # The live read models already match what the log says (exit 1 on any drift).
    call_command("verify_projections", verbosity=0, stdout=StringIO())
    tamper_with_read_models(orders, customer_id_of(customer_client))
    assert shop.order(staff_client, orders["completed"])["status"] == "pending"
    assert staff_client.get(f"/api/orders/{orders['refunded_late']}/saga/").status_code == 404

    output = StringIO()
    call_command("rebuild_projections", verbosity=0, stdout=output)

    replayed = int(re.search(r"from (\d+) events", output.getvalue()).group(1))
    assert replayed == Event.objects.count() > 0
    assert not OrderSummary.objects.filter(pk="ghost-order").exists()
    assert read_model_counts() == counts_before
    assert all(counts_before.values()), counts_before
    after = api_answers(shop, staff_client, customers, orders, owners)
    assert [key for key in before if before[key] != after[key]] == []
    assert after == before


def test_rebuild_in_place_replays_into_emptied_tables(busy_shop, monkeypatch):
    """In place, each projection is reset to empty tables before the replay refills them (the
    online rebuild replays into copies and never empties a live table: its tests are in
    test_online_rebuild.py)."""
    rows_after_reset = {}
    for projection in get_projections():
        reset = projection.reset

        def spy(projection=projection, reset=reset):
            reset()
            for model in projection.models:
                rows_after_reset[model._meta.label] = model.objects.count()

        monkeypatch.setattr(projection, "reset", spy)
    counts_before = read_model_counts()

    call_command("rebuild_projections", "--in-place", verbosity=0, stdout=StringIO())

    assert rows_after_reset == dict.fromkeys(counts_before, 0)
    assert read_model_counts() == counts_before


def test_sagas_waiting_at_rebuild_time_still_expire_afterwards(shop, staff_client, busy_shop):
    """The rebuilt saga log keeps what each saga waits for and since when."""
    orders, _ = busy_shop
    waiting = orders["waiting"]
    before = shop.saga(staff_client, waiting)
    assert before["waiting_for"] == "process_payment"
    call_command("rebuild_projections", verbosity=0, stdout=StringIO())
    assert shop.saga(staff_client, waiting) == before

    call_command("expire_sagas", verbosity=0)

    order = shop.order(staff_client, waiting)
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_timeout")
    assert shop.stock("sku-sprocket") == (500 - 7, 0, 7)  # only the completed order sold

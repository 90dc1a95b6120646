"""The event catalog (docs/EVENTS.md) against the code: every event type an app declares is
listed, and the events real orders append carry exactly the payload keys listed, so the
documented contract cannot drift from what the services emit."""

import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command

from eventstore.models import Event
from tests.acceptance.shop import Shop, customer_id_of

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "docs" / "EVENTS.md"
FIX_CATALOG = "fix its table row in docs/EVENTS.md"

# A table row naming one or more event types in its first cell: | `A`, `B` | stream | payload |
CATALOG_ROW = re.compile(r"^\|\s*`[A-Za-z]+`")
# An event type constant's value, as opposed to a stream name ("order") or another constant.
EVENT_TYPE_VALUE = re.compile(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+")
# The innermost bracketed or parenthesised text of a payload cell: it describes a key.
INNERMOST_GROUP = re.compile(r"[(\[{][^()\[\]{}]*[)\]}]")

# Reached by no flow below, and why. Adding a flow that reaches one means removing it here.
UNREACHED = {
    # A compensation that stays unanswered for SAGA_COMPENSATION_ATTEMPTS tries; every service
    # answers one within the request here (tests/orders covers the saga giving up).
    "SagaCompensationFailed",
    # A cancellation step unanswered as often (tests/orders/test_cancellation.py).
    "SagaStepStalled",
    # Pushes need a browser's subscription and a push service to answer; the flows here have
    # none (tests/notifications/test_push_delivery.py runs them against a local push service).
    "NotificationPushed",
    "NotificationPushFailed",
    "PushSubscriptionAdded",
    "PushSubscriptionRemoved",
    # No webhook endpoint is registered in these flows (tests/webhooks/test_endpoints.py).
    "WebhookEndpointRegistered",
    "WebhookEndpointChanged",
    "WebhookSecretRotated",
    "WebhookEndpointDisabled",
    "WebhookEndpointEnabled",
    "WebhookEndpointDeleted",
}
UNREACHABLE_SMTP = "tests.notifications.email_backends.UnreachableSMTPBackend"


@dataclass(frozen=True)
class Entry:
    """One event type as the catalog documents it."""

    streams: frozenset[str]
    required: frozenset[str]
    optional: frozenset[str]


def payload_keys(cell: str) -> tuple[frozenset[str], frozenset[str]]:
    """(required, optional) keys of a payload cell: the backticked names outside brackets and
    parentheses, `key?` being optional."""
    previous = None
    while previous != cell:
        previous, cell = cell, INNERMOST_GROUP.sub("", cell)
    names = re.findall(r"`(\w+\??)`", cell)
    return (
        frozenset(name for name in names if not name.endswith("?")),
        frozenset(name[:-1] for name in names if name.endswith("?")),
    )


def read_catalog() -> dict[str, Entry]:
    """Event type -> its catalog entry; a type listed twice fails."""
    catalog: dict[str, Entry] = {}
    for line in CATALOG.read_text().splitlines():
        if not CATALOG_ROW.match(line):
            continue
        types_cell, stream, payload = (cell.strip() for cell in line.strip("|").split("|")[:3])
        required, optional = payload_keys(payload)
        for event_type in re.findall(r"`(\w+)`", types_cell):
            assert event_type not in catalog, f"{event_type} is listed twice: {FIX_CATALOG}"
            streams = frozenset(name.strip() for name in stream.split(","))
            catalog[event_type] = Entry(streams, required, optional)
    assert catalog, f"no event rows found in {CATALOG}: is the table format unchanged?"
    return catalog


def declared_event_types() -> Iterator[tuple[str, str]]:
    """(event type, module) for each event type constant of an app's events.py."""
    for config in apps.get_app_configs():
        if Path(config.path).parent != ROOT:
            continue  # not one of the project's apps
        module_name = f"{config.name}.events"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and EVENT_TYPE_VALUE.fullmatch(value):
                yield value, module.__file__


def test_every_declared_event_type_is_in_the_catalog_and_every_listed_one_is_declared():
    catalog = read_catalog()
    declared = dict(declared_event_types())

    missing = {
        event_type: path for event_type, path in declared.items() if event_type not in catalog
    }
    assert not missing, f"declared but not in {CATALOG.name}, add a row for each: {missing}"
    unknown = sorted(set(catalog) - set(declared))
    assert not unknown, (
        f"listed in {CATALOG.name} but declared in no app's events.py: {unknown}; remove the rows"
        " or declare the constants"
    )


# --- flows through the HTTP API ---------------------------------------------------------------


def completed_order(shop: Shop, client) -> None:
    """An order of two products, paid, completed and notified."""
    shop.place_order(client, {"sku-widget": 3, "sku-gadget": 1})


def declined_order(shop: Shop, client) -> None:
    """An order whose card is declined: its stock is released and it is cancelled."""
    shop.place_order(client, {"sku-widget": 1}, payment_token="tok_decline")


def short_order(shop: Shop, client) -> None:
    """An order for more than the stock: refused by inventory and cancelled."""
    shop.place_order(client, {"sku-gadget": 100})


def timed_out_order_paid_late(shop: Shop, client, settings) -> None:
    """The payment never answers, the saga gives up, then a late charge is refunded."""
    placed = shop.place_order(client, {"sku-widget": 1}, payment_token="tok_timeout")
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    call_command("expire_sagas", verbosity=0)
    shop.charge_late(client, placed)


def cancelled_after_completion(shop: Shop, client) -> None:
    """A completed order its customer cancels: refunded, its stock returned, the customer told."""
    placed = shop.place_order(client, {"sku-widget": 1})
    response = client.post(f"/api/orders/{placed['order_id']}/cancel/", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "refunded"


def stock_adjusted_by_staff(shop: Shop) -> None:
    """Staff restock a product, and reserve and release some of it by hand."""
    reserve = {"reservation_id": "res-1", "items": [{"product_id": "sku-widget", "quantity": 2}]}
    for url, body in [
        ("/api/inventory/sku-widget/restock/", {"quantity": 5}),
        ("/api/inventory/reserve/", reserve),
        ("/api/inventory/release/", {"reservation_id": "res-1"}),
    ]:
        response = shop.staff.post(url, body, format="json")
        assert response.status_code == 200, (url, response.status_code, response.content)


def catalogue_changed_by_staff(shop: Shop) -> None:
    """Staff reprice and rename a product, correct its stock, discontinue and restore it."""
    for method, url, body in [
        (
            "patch",
            "/api/inventory/sku-widget/",
            {"price": "10.49", "name": "Widget", "reason": "x"},
        ),
        ("post", "/api/inventory/sku-widget/adjust/", {"quantity": -1, "reason": "damaged"}),
        ("delete", "/api/inventory/sku-widget/", None),
        ("post", "/api/inventory/sku-widget/restore/", {"reason": "back"}),
    ]:
        response = getattr(shop.staff, method)(url, body, format="json")
        assert response.status_code == 200, (url, response.status_code, response.content)


def undeliverable_notice_from_staff(shop: Shop, client, settings) -> None:
    """A notification staff send while the mail server is unreachable."""
    settings.EMAIL_BACKEND = UNREACHABLE_SMTP
    body = {"customer_id": customer_id_of(client), "type": "promotion", "message": "20% off"}
    response = shop.staff.post("/api/notifications/send/", body, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.django_db(transaction=True)
def test_the_events_real_flows_append_carry_exactly_the_catalog_payload_keys(
    shop, customer_client, settings
):
    shop.add_product("sku-widget", price="9.99", stock=10)
    shop.add_product("sku-gadget", price="24.50", stock=4)
    completed_order(shop, customer_client)
    declined_order(shop, customer_client)
    short_order(shop, customer_client)
    timed_out_order_paid_late(shop, customer_client, settings)
    cancelled_after_completion(shop, customer_client)
    stock_adjusted_by_staff(shop)
    catalogue_changed_by_staff(shop)
    undeliverable_notice_from_staff(shop, customer_client, settings)
    catalog = read_catalog()

    emitted: set[str] = set()
    for event in Event.objects.order_by("position"):
        entry = catalog.get(event.event_type)
        assert entry is not None, (
            f"{event.event_type} (on {event.aggregate_type}) is appended but not in "
            f"{CATALOG.name}: add a row, and its constant to the app's events.py"
        )
        keys = set(event.payload)
        assert event.aggregate_type in entry.streams, (
            f"{event.event_type} is appended to {event.aggregate_type!r} streams, the catalog "
            f"says {sorted(entry.streams)}: {FIX_CATALOG}"
        )
        assert entry.required <= keys <= entry.required | entry.optional, (
            f"{event.event_type} carries {sorted(keys)}; the catalog lists "
            f"{sorted(entry.required)} and optional {sorted(entry.optional)}: {FIX_CATALOG} "
            "(or the emitter, if it lost a key: see 'Changing an event' there)"
        )
        emitted.add(event.event_type)

    unreached = set(catalog) - emitted
    assert unreached == UNREACHED, (
        f"no flow here appends {sorted(unreached - UNREACHED)}: add a flow or explain it in "
        f"UNREACHED; UNREACHED names {sorted(UNREACHED - unreached)}, which a flow appends or "
        "the catalog lacks: remove them from it"
    )

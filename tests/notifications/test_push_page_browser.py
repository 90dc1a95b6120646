"""The push page in headless Chromium, against the live server: a signed-in customer's page and
its service worker load without console errors, and turning push on posts the browser's
subscription to the API, which records it for that customer; turning it off ends it.

Offline, headless Chromium reaches no push service, so `PushManager.subscribe` is replaced (an
init script) by one that answers a well-formed subscription, after noting the
applicationServerKey the page passed; everything else is the browser's own. Skipped where
Chromium is not installed (`apt-get install chromium`; .ci/run installs it where it can)."""

import json
import os
import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import sync_playwright

from httpapi.caller import customer_id_for
from notifications import webpush
from notifications.models import PushSubscription

CHROMIUM = next(
    filter(None, (shutil.which(name) for name in ("chromium", "chromium-browser"))), None
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Chromium: apt-get install chromium (.ci/run does)"
    ),
]

ENDPOINT = "https://push.example.net/wpush/v2/this-browser"
TIMEOUT_MS = 20_000

# Stands in for the browser's push service: subscribe() answers a subscription with the keys
# given, and getSubscription() that subscription from then on.
STUB = """
(() => {
  const given = %s;
  let current = null;
  const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  PushManager.prototype.subscribe = async function (options) {
    window.applicationServerKey = base64url(options.applicationServerKey);
    current = {
      endpoint: given.endpoint,
      expirationTime: null,
      options,
      toJSON: () => ({endpoint: given.endpoint, expirationTime: null, keys: given.keys}),
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


def browser_keys() -> dict[str, str]:
    """A browser subscription's keys: a P-256 public point and a 16-byte auth secret."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {"p256dh": webpush.b64url_encode(point), "auth": webpush.b64url_encode(os.urandom(16))}


def status_text(page) -> str:
    return page.locator("#status").text_content()


def toggle(page, method: str) -> tuple[int, dict | None]:
    """Click the page's button and wait until it is ready again; the status and JSON of the
    API's answer to the page's `method` request to the subscriptions."""
    with page.expect_response(
        lambda response: (
            response.request.method == method and "/push-subscriptions/" in response.url
        ),
        timeout=TIMEOUT_MS,
    ) as answered:
        page.locator("#toggle").click()
    page.wait_for_function("() => !document.getElementById('toggle').disabled", timeout=TIMEOUT_MS)
    answer = answered.value
    return answer.status, (answer.json() if answer.status != 204 else None)


@pytest.fixture
def signed_in(client, customer):
    """The session cookie of the signed-in customer."""
    client.force_login(customer)
    return client.cookies["sessionid"].value


def test_a_customer_turns_push_on_and_off_in_headless_chromium(live_server, customer, signed_in):
    keys = browser_keys()
    problems: list[str] = []
    refused: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": signed_in, "url": live_server.url}])
            context.add_init_script(STUB % json.dumps({"endpoint": ENDPOINT, "keys": keys}))
            # Errors anywhere: the page's console and uncaught exceptions, the service
            # worker's console (the context's console carries workers' messages), refused
            # requests.
            context.on(
                "console",
                lambda message: message.type == "error" and problems.append(message.text),
            )
            context.on("weberror", lambda error: problems.append(str(error.error)))
            context.on(
                "response",
                lambda response: response.status >= 400 and refused.append(response.url),
            )
            page = context.new_page()
            page.on("pageerror", lambda error: problems.append(str(error)))

            page.goto(f"{live_server.url}/push/")
            button = page.locator("#toggle")
            button.wait_for(state="visible", timeout=TIMEOUT_MS)
            # Ready (the button enabled) or failed (the status says why).
            page.wait_for_function(
                "() => !document.getElementById('toggle').disabled"
                " || document.getElementById('status').textContent !== ''",
                timeout=TIMEOUT_MS,
            )
            assert status_text(page) == ""
            worker = page.evaluate(
                "async () => (await navigator.serviceWorker.ready).active.scriptURL"
            )
            scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
            before = button.text_content()

            turned_on = toggle(page, "POST")
            on = (status_text(page), button.text_content())
            server_key = page.evaluate("() => window.applicationServerKey")
            turned_off = toggle(page, "DELETE")
            off = (status_text(page), button.text_content())
            workers = [worker.url for worker in context.service_workers]
        finally:
            browser.close()

    assert problems == []
    assert refused == []
    assert worker == f"{live_server.url}/service-worker.js"
    assert workers == [worker]
    assert scope == f"{live_server.url}/"
    assert before == "Turn push on"
    assert on == ("Push is on in this browser.", "Turn push off")
    assert off == ("Push is off in this browser.", "Turn push on")
    assert server_key == webpush.public_key()
    status, answer = turned_on
    assert (status, answer["endpoint"], answer["status"]) == (201, ENDPOINT, "active")
    assert turned_off[0] == 204
    subscription = PushSubscription.objects.get()
    assert subscription.subscription_id == answer["subscription_id"]
    assert subscription.customer_id == customer_id_for(customer)
    assert (subscription.endpoint, subscription.p256dh, subscription.auth) == (
        ENDPOINT,
        keys["p256dh"],
        keys["auth"],
    )
    assert subscription.status == "unsubscribed"
